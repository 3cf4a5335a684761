import { PassThrough } from 'node:stream';
export class FrameChecker extends PassThrough { constructor(_n: number) { super(); } }
