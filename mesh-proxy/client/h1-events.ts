// The listeners of an H1Connection's parser, socket, request body and timer: module-level functions
// registered once per connection (or body), finding it through a symbol on the emitter, so no
// closure is made per connection or per request.
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { H1Connection } from './h1-connection.ts';
import type { NodeHttpParser, ParserEvents } from './h1-wire.ts';

export const kConn = Symbol('meshgate.h1conn');
export type TaggedParser = NodeHttpParser & { [kConn]: H1Connection };
export type TaggedSocket = Socket & { [kConn]: H1Connection };

export function onTimer(c: H1Connection): void {
  c.timedOut();
}
export function onMessageBegin(this: TaggedParser): void {
  this[kConn].messageBegin();
}
export function onHeaders(this: TaggedParser, list: string[]): void {
  this[kConn].headerChunk(list);
}
export function onHeadersComplete(this: TaggedParser, _major: number, _minor: number, raw: string[] | undefined, _method: unknown, _url: unknown, status: number, statusText: string, _upgrade: boolean, keepAlive: boolean): number {
  return this[kConn].headersComplete(raw, status, statusText, keepAlive);
}
export function onBody(this: TaggedParser, chunk: Buffer): void {
  this[kConn].bodyChunk(chunk);
}
export function onMessageComplete(this: TaggedParser): void {
  this[kConn].messageComplete();
}
export const PARSER_EVENTS: ParserEvents = {
  begin: onMessageBegin as ParserEvents['begin'],
  headers: onHeaders as ParserEvents['headers'],
  headersComplete: onHeadersComplete as ParserEvents['headersComplete'],
  body: onBody as ParserEvents['body'],
  complete: onMessageComplete as ParserEvents['complete'],
};
export function onSocketData(this: TaggedSocket, chunk: Buffer): void {
  this[kConn].data(chunk);
}
export function onSocketEnd(this: TaggedSocket): void {
  this[kConn].end();
}
export function onSocketError(this: TaggedSocket, err: Error): void {
  this[kConn].error(err);
}
export function onSocketClose(this: TaggedSocket): void {
  this[kConn].close();
}
export function onSocketIdle(this: TaggedSocket): void {
  this[kConn].idle();
}
export function onSocketDrain(this: TaggedSocket): void {
  this[kConn].drain();
}
export function onBodyData(this: Readable & { [kConn]: H1Connection }, chunk: Buffer | string): void {
  this[kConn].bodyData(chunk);
}
export function onBodyEnd(this: Readable & { [kConn]: H1Connection }): void {
  this[kConn].bodyEnd();
}
export function onBodyError(this: Readable & { [kConn]: H1Connection }, err: Error): void {
  this[kConn].bodyError(err);
}
