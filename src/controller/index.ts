/**
 * coat's OpenFlow controller: channels to switches (layer 2) and flow programming (layer 3).
 * The public surface, listed explicitly; see docs/controller.md.
 */
export { Controller, type ControllerOptions, type ControllerEvents, type SwitchUpInfo } from './controller.js';
export {
  SwitchConnection, OfpErrorReply, FlowModsError, BundleError, ConnectionClosedError, deleteByCookie,
  type ConnectionOptions, type SwitchEvents, type ReconcileResult, type BundleOptions, type PreparedBundle, type RoleName,
} from './connection.js';
export { RequestTimeoutError } from './requests.js';
export { ControllerError, ControllerErrorCode, type CloseReason } from './errors.js';
export { parseEndpoint, formatEndpoint, OPENFLOW_PORT, type Endpoint, type ParsedEndpoint } from './endpoint.js';
export type { TlsOptions, Listener } from './transport.js';
export {
  COAT_COOKIE, COAT_COOKIE_MASK, COAT_COOKIE_MAGIC, COAT_BAND_COOKIE_MASK, DEFAULT_BANDS, BandTable, bandCookie,
  cookieBand, flowCookie, isCoatCookie, type PriorityBand,
} from './cookies.js';
export { coatFlowMod, coatFlowMods, DEFAULT_BAND_TABLE, type FlowSpec } from './flows.js';
export { planReconcile, type DesiredFlows, type ReconcilePlan } from './reconcile.js';
export { systemClock, type Clock } from './keepalive.js';
