// The Node socket.io server the Socket.IO fan-out benchmark compares with
// (docs/BENCHMARKS.md, scripts/bench-socketio.sh). It answers the events
// switchboard-load sends as Socket.IO clients, as Switchboard does:
// `room:join` joins the room and answers `room:joined`; `message:send`
// re-broadcasts to the whole room (the sender too) as `message:receive`.
// No auth, history, presence or limits: the least a socket.io app does.
"use strict";
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 3000);
// switchboard-load does not answer Engine.IO pings: the bench script sets a
// ping interval longer than a run, on both servers.
const io = new Server(port, {
  transports: ["websocket", "polling"],
  pingInterval: Number(process.env.PING_INTERVAL_MS || 25000),
});
const seqs = new Map();

io.on("connection", (socket) => {
  socket.on("room:join", (frame) => {
    const room = String(frame && frame.room);
    socket.join(room);
    socket.emit("room:joined", { type: "room:joined", room });
  });
  socket.on("message:send", (frame) => {
    const room = String(frame && frame.room);
    const seq = (seqs.get(room) || 0) + 1;
    seqs.set(room, seq);
    io.to(room).emit("message:receive", {
      type: "message:receive",
      room,
      seq,
      from: socket.id,
      ts: Date.now(),
      data: frame.data,
    });
  });
});
console.log(`socket.io listening on port ${port}`);
