/** Packet capture of an interface (in a namespace) and its TCP analysis. */
export { CaptureError, type CaptureErrorCode } from './errors.js';
export {
  PcapStreamParser,
  parsePcap,
  decodePcapFileHeader,
  encodePcapFileHeader,
  encodePcapRecord,
  LINKTYPE_ETHERNET,
  type PcapFileHeader,
  type PcapRecord,
} from './pcap-format.js';
export {
  TcpAnalyser,
  analyseTcp,
  type AnalysisOptions,
  type CaptureAnalysis,
  type ConnectionAnalysis,
  type DirectionStats,
  type RttSample,
  type TimelineBucket,
} from './tcp-analysis.js';
export { startCapture, type CaptureOptions, type CaptureResult, type KernelStats, type RunningCapture } from './capture.js';
