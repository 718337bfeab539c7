/** The per-host agent and the controller's client for it: public surface. */
export { Agent, natsConnectionOptions, type AgentOptions, type ExecutorFactory, type NatsAuth } from './agent.js';
export { AgentRegistry, AgentClient, type AgentInfo, type RegistryEvents, type RegistryOptions, type RequestOptions } from './client.js';
export * from './errors.js';
export * from './protocol.js';
export { signCommand, CommandVerifier, MAX_SKEW_MS } from './auth.js';
