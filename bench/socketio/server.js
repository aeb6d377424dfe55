// A Socket.IO 4 reference server for the bench: the chat room's shapes, written the way
// a plain Socket.IO chat app would be, so bench/run.py --server socketio measures
// Socket.IO side by side with chatsite (same generator, one process on one core).
//
// Not a chat server: one process, rooms in memory, no auth, no persistence, no limits.
// WebSocket transport only (clients connect with EIO=4&transport=websocket).
//
//   node bench/socketio/server.js --port 8770
//
// Handshake query: room=<slug> (default "bench"), after=<seq> to resume.
// Server to client:
//   welcome  {room, you, roster, history, last_seq, history_truncated, pinned}, once on
//            connect: the latest 50 events, or with after=N everything after N up to
//            1000 (history_truncated past that);
//   message  {seq, id, ts, author, body, reply_to, mentions, client_id}, to the room with
//            io.to(room).emit: Socket.IO's own broadcast (encoded once), one per emit;
//   batch    {events}, a `sync` replay.
// Client to server, each with a Socket.IO ack whose argument is the reply:
//   send {body, client_id}  -> {type: "ack", client_id, id, seq} or {type: "error", ...}
//   ping {ts, client_id}    -> {type: "pong", ts, last_seq, client_id}
//   sync {after, client_id} -> a `batch` emit, then {type: "synced", last_seq, truncated, client_id}

"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const HISTORY_FIRST = 50;
const HISTORY_MAX = 1000;
const BODY_MAX = 2000;
const CLIENT_ID_MAX = 64;

function parseArgs(argv) {
  const opts = { host: "127.0.0.1", port: 8770, maxSeconds: 3600, logMax: 100000 };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    const value = argv[i + 1];
    if (name === "--host") opts.host = value;
    else if (name === "--port") opts.port = Number(value);
    else if (name === "--max-seconds") opts.maxSeconds = Number(value);
    else if (name === "--log-max") opts.logMax = Number(value);
    else throw new Error(`unknown argument ${name}`);
    i++;
  }
  return opts;
}

class Room {
  constructor(slug, logMax) {
    this.slug = slug;
    this.key = `room:${slug}`;
    this.logMax = logMax;
    this.log = []; // log[i] has seq base + i + 1
    this.base = 0;
    this.lastSeq = 0;
    this.viewers = 0;
  }

  append(event) {
    event.seq = ++this.lastSeq;
    this.log.push(event);
    if (this.log.length > 2 * this.logMax) {
      // Bounded memory, trimmed now and then rather than on every append.
      const drop = this.log.length - this.logMax;
      this.log = this.log.slice(drop);
      this.base += drop;
    }
    return event.seq;
  }

  latest(n) {
    return this.log.slice(-n);
  }

  // Events after `after`, up to `max`; what fell off the bounded log is gone.
  after(after, max) {
    const start = Math.max(0, after - this.base);
    const events = this.log.slice(start, start + max);
    return { events, truncated: start + events.length < this.log.length };
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const rooms = new Map();
  const roomFor = (slug) => {
    let room = rooms.get(slug);
    if (room === undefined) {
      room = new Room(slug, opts.logMax);
      rooms.set(slug, room);
    }
    return room;
  };

  const httpServer = http.createServer();
  const io = new Server(httpServer, { transports: ["websocket"], serveClient: false });

  io.on("connection", (socket) => {
    const query = socket.handshake.query;
    const room = roomFor(typeof query.room === "string" && query.room ? query.room : "bench");
    const afterSeq = /^\d+$/.test(query.after || "") ? Number(query.after) : null;
    let history;
    let truncated = false;
    if (afterSeq === null) {
      history = room.latest(HISTORY_FIRST);
    } else {
      ({ events: history, truncated } = room.after(afterSeq, HISTORY_MAX));
    }
    // Joined and welcomed in the same tick: every broadcast after this has a later seq.
    socket.join(room.key);
    room.viewers++;
    socket.emit("welcome", {
      room: { slug: room.slug, title: room.slug, is_live: true, slow_mode_seconds: 0, hosts: [] },
      you: { id: null, name: null, role: "guest", muted_until: null, balance: 0, blocked: [] },
      roster: { count: room.viewers, team: [], audience: [], offset: 0 },
      history,
      last_seq: room.lastSeq,
      history_truncated: truncated,
      pinned: [],
    });

    socket.on("disconnect", () => {
      room.viewers--;
    });

    socket.on("send", (data, ack) => {
      if (typeof ack !== "function") return;
      const clientId = data && data.client_id;
      const body = data && data.body;
      if (typeof clientId !== "string" || !clientId || clientId.length > CLIENT_ID_MAX ||
          typeof body !== "string" || !body.trim() || body.length > BODY_MAX) {
        ack({ type: "error", code: "bad_request", detail: "send needs a body and a client_id.",
              client_id: typeof clientId === "string" ? clientId : null });
        return;
      }
      const event = {
        seq: 0,
        id: room.lastSeq + 1,
        ts: new Date().toISOString(),
        author: { id: 1, name: "bench", role: "moderator" },
        body,
        reply_to: null,
        mentions: [],
        client_id: clientId,
      };
      const seq = room.append(event);
      ack({ type: "ack", client_id: clientId, id: seq, seq });
      io.to(room.key).emit("message", event);
    });

    socket.on("ping", (data, ack) => {
      if (typeof ack !== "function") return;
      ack({ type: "pong", ts: data && data.ts, last_seq: room.lastSeq, client_id: data && data.client_id });
    });

    socket.on("sync", (data, ack) => {
      if (typeof ack !== "function") return;
      const after = data && Number.isInteger(data.after) && data.after >= 0 ? data.after : room.lastSeq;
      const { events, truncated } = room.after(after, HISTORY_MAX);
      if (events.length) socket.emit("batch", { events });
      const lastSeq = events.length ? events[events.length - 1].seq : after;
      ack({ type: "synced", last_seq: lastSeq, truncated, client_id: data && data.client_id });
    });
  });

  const stop = () => {
    io.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  setTimeout(stop, opts.maxSeconds * 1000).unref();

  httpServer.listen(opts.port, opts.host, () => {
    console.log(`socket.io ${require("socket.io/package.json").version} on ws://${opts.host}:${opts.port}/socket.io/` +
                `?EIO=4&transport=websocket&room=<slug>`);
  });
}

main();
