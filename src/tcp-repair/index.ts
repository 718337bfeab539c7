/** The TCP_REPAIR boundary's public surface. */
export { RepairSocket, listenIn, netnsPath, streamOffsets, restoreBuffers, ZERO_ORIGIN, type StreamOrigin, type RestoreOptions } from './socket.js';
export { encode as encodeSocketImage, decode as decodeSocketImage, encodingLength as socketImageLength, sentUnacked, neverSent, SocketImageError, IMAGE_CODES, IMAGE_VERSION, type SocketImage, type Endpoint, type RepairWindow } from './image.js';
export { TcpRepairError, TCP_REPAIR_CODES, type TcpRepairCode } from './errors.js';
export { tcpSocketsOf, parseProcNetTcp, TCP_STATE, type ProcessTcpSocket, type ProcTcpEntry } from './proc.js';
export { native, addonPath } from './native.js';
