import { PassThrough } from 'node:stream';
export class Base64RequestDecoder extends PassThrough {}
