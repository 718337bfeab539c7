/** Image streaming between agents: public surface. */
export * from './errors.js';
export * from './frames.js';
export { ImageDigest } from './image-digest.js';
export { listImage, digestImageDir, imageBytes } from './image-dir.js';
export { TokenBucket } from './token-bucket.js';
export { sendImage, probeBandwidth, type SendOptions, type SendResult } from './sender.js';
export { ImageReceiver, type ReceivedImage, type ReceiverOptions } from './receiver.js';
