// The listeners of an HTTP/1.1 server connection's parser and socket (h1-server-connection.ts):
// module-level functions registered once per connection, finding it through a symbol, so no
// closure is made per connection or per request.
import type { Socket } from 'node:net';
import type { NodeHttpParser, ParserEvents } from '../client/h1-wire.ts';
import type { H1ServerConnection } from './h1-server-connection.ts';

export const kConn = Symbol('meshgate.h1server.conn');
export type TaggedParser = NodeHttpParser & { [kConn]: H1ServerConnection };
export type TaggedSocket = Socket & { [kConn]?: H1ServerConnection };

function onMessageBegin(this: TaggedParser): void {
  this[kConn].messageBegin();
}
function onHeaders(this: TaggedParser, list: string[], url: string): void {
  this[kConn].headerChunk(list, url);
}
function onHeadersComplete(
  this: TaggedParser, major: number, minor: number, raw: string[] | undefined, method: number, url: string | undefined,
  _status: unknown, _statusText: unknown, upgrade: boolean, keepAlive: boolean,
): number {
  this[kConn].headersComplete(major, minor, raw, method, url, upgrade, keepAlive);
  return 0;
}
function onBody(this: TaggedParser, chunk: Buffer): void {
  this[kConn].bodyChunk(chunk);
}
function onMessageComplete(this: TaggedParser): void {
  this[kConn].messageComplete();
}
export function onSocketData(this: TaggedSocket, chunk: Buffer): void {
  this[kConn]?.data(chunk);
}
export function onSocketEnd(this: TaggedSocket): void {
  this[kConn]?.ended();
}
export function onSocketError(this: TaggedSocket): void {
  // The reason reaches the exchange as a closed connection ('close' follows).
  this.destroy();
}
export function onSocketClose(this: TaggedSocket): void {
  this[kConn]?.closed();
}

/** Reads and drops what a closing connection still receives (an upgrade's refusal stopped reading). */
export function discard(): void {}

export const SERVER_PARSER_EVENTS: ParserEvents = {
  begin: onMessageBegin as ParserEvents['begin'],
  headers: onHeaders as ParserEvents['headers'],
  headersComplete: onHeadersComplete as ParserEvents['headersComplete'],
  body: onBody as ParserEvents['body'],
  complete: onMessageComplete as ParserEvents['complete'],
};
