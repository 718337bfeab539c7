/**
 * OpenFlow 1.3.5 codec: pure bytes <-> typed messages, no I/O. See docs/openflow.md.
 *
 *   const buf = encodeMessage(flowMod({ match: match({ in_port: 1 }), instructions: [applyActions(output(2))] }));
 *   const msg = decodeMessage(buf); // msg.type === 'flow_mod'
 */
export * from './constants.js';
export { OfpError, OFP_ERROR_CODE_MEANINGS, type OfpErrorCode } from './errors.js';
export type { OxmValue, OxmBasicField, OxmOpaque, OxmField, Match } from './oxm.js';
export { oxmName, oxmLength } from './oxm.js';
export type { Action, ActionType, Instruction, InstructionType } from './actions.js';
export type { Port, PacketQueue, QueueProperty, Bucket, MeterBand, HelloElement } from './structs.js';
export type {
  MultipartRequestBody, MultipartReplyBody, FlowStatsRequest, FlowStats, TableStats, PortStats, QueueStats,
  BucketCounter, GroupStats, GroupDesc, MeterBandStats, MeterStats, MeterConfig, FeatureId, OxmId,
  TableFeatureProperty, TableFeatures, ExperimenterBody,
} from './multipart.js';
export type {
  OfpMessage, OfpMessageType, MessageOf, AsyncMaskPair, HelloMessage, ErrorMessage, StandardErrorMessage,
  ExperimenterErrorMessage, EchoMessage, ExperimenterMessage, EmptyMessage, FeaturesReply, SwitchConfig, PacketIn,
  FlowRemoved, PortStatus, PacketOut, FlowMod, GroupMod, PortMod, TableMod, MultipartRequest, MultipartReply,
  QueueGetConfigRequest, QueueGetConfigReply, RoleMessage, AsyncConfig, MeterMod, BundleControl, BundleAdd,
} from './messages.js';
export { joinMultipartReplyBodies } from './multipart.js';
export { decodeMessage, decodeAll, encodeMessage, encodeMessageInto, encodingLength, peekLength } from './messages.js';
export { OfpStreamParser, type OfpStreamParserOptions } from './stream.js';
export * from './builders.js';
