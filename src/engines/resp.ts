import { connect, type Socket } from 'node:net';

type Reply = string | number | null | Reply[] | RespError;

export class RespError extends Error {}

/**
 * A minimal RESP2 client for the Redis engine's few admin commands: one connection per
 * call, arguments always sent as bulk strings (so no argument can be split or reinterpreted).
 */
export async function redisCommands(
  target: { host: string; port: number; username?: string; password?: string; timeoutMs?: number },
  commands: string[][],
): Promise<Reply[]> {
  const socket = connect({ host: target.host, port: target.port });
  socket.setTimeout(target.timeoutMs ?? 5_000);
  const parser = createParser();
  const pending: Array<(reply: Reply) => void> = [];
  const failed = new Promise<never>((_, reject) => {
    socket.on('error', reject);
    socket.on('timeout', () => reject(new Error(`no reply from ${target.host}:${target.port} in time`)));
    socket.on('close', () => reject(new Error('connection closed')));
  });
  failed.catch(() => {});
  socket.on('data', (chunk) => {
    for (const reply of parser(chunk)) pending.shift()?.(reply);
  });
  const send = (args: string[]) =>
    Promise.race([
      new Promise<Reply>((resolve) => {
        pending.push(resolve);
        socket.write(encode(args));
      }),
      failed,
    ]);
  try {
    await Promise.race([new Promise((resolve) => socket.once('connect', resolve)), failed]);
    if (target.password !== undefined) {
      const auth = await send(['AUTH', target.username || 'default', target.password]);
      if (auth instanceof RespError) throw new RespError(`authentication refused: ${auth.message}`);
    }
    const replies: Reply[] = [];
    for (const args of commands) {
      const reply = await send(args);
      if (reply instanceof RespError) throw reply;
      replies.push(reply);
    }
    return replies;
  } finally {
    socket.destroy();
  }
}

function encode(args: string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
  return Buffer.from(parts.join(''), 'utf8');
}

function createParser() {
  let buffer = Buffer.alloc(0);
  const parseAt = (pos: number): [Reply, number] | undefined => {
    const end = buffer.indexOf('\r\n', pos);
    if (end < 0) return undefined;
    const type = String.fromCharCode(buffer[pos]!);
    const line = buffer.toString('utf8', pos + 1, end);
    const next = end + 2;
    if (type === '+') return [line, next];
    if (type === '-') return [new RespError(line), next];
    if (type === ':') return [Number(line), next];
    if (type === '$') {
      const length = Number(line);
      if (length < 0) return [null, next];
      if (buffer.length < next + length + 2) return undefined;
      return [buffer.toString('utf8', next, next + length), next + length + 2];
    }
    if (type === '*') {
      const count = Number(line);
      if (count < 0) return [null, next];
      const items: Reply[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseAt(at);
        if (!item) return undefined;
        items.push(item[0]);
        at = item[1];
      }
      return [items, at];
    }
    throw new RespError(`unexpected reply type ${JSON.stringify(type)}`);
  };
  return (chunk: Buffer): Reply[] => {
    buffer = Buffer.concat([buffer, chunk]);
    const replies: Reply[] = [];
    for (;;) {
      const parsed = buffer.length > 0 ? parseAt(0) : undefined;
      if (!parsed) return replies;
      replies.push(parsed[0]);
      buffer = buffer.subarray(parsed[1]);
    }
  };
}

export type { Socket };
