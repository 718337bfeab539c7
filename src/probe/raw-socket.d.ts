// The part of the `raw-socket` package (1.8, no bundled types) that src/probe uses.
declare module 'raw-socket' {
  import { EventEmitter } from 'node:events';
  export const AddressFamily: { IPv4: number; IPv6: number };
  export const Protocol: { None: number; ICMP: number; TCP: number; UDP: number; ICMPv6: number };
  export interface SocketOptions {
    addressFamily?: number;
    protocol?: number;
    bufferSize?: number;
    generateChecksums?: boolean;
    checksumOffset?: number;
  }
  export interface Socket extends EventEmitter {
    send(buffer: Buffer, offset: number, length: number, address: string, before: () => void, after: (error: Error | null, bytes: number) => void): this;
    close(): this;
    on(event: 'message', listener: (buffer: Buffer, source: string) => void): this;
    on(event: 'error', listener: (error: Error) => void): this;
    on(event: 'close', listener: () => void): this;
  }
  export function createSocket(options?: SocketOptions): Socket;
  const raw: { createSocket: typeof createSocket; AddressFamily: typeof AddressFamily; Protocol: typeof Protocol };
  export default raw;
}
