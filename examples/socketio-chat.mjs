// A chat line client written against the real socket.io-client, talking to
// a Switchboard hub (docs/CLIENT.md, "Socket.IO clients").
//
//   npm install socket.io-client@4
//   node examples/socketio-chat.mjs http://127.0.0.1:8080 general [token]
//
// Lines typed on stdin are sent to the room; messages of the room are printed.

import { io } from "socket.io-client";
import readline from "node:readline";

const [url = "http://127.0.0.1:8080", room = "general", token] = process.argv.slice(2);
const socket = io(url, { auth: token ? { token } : { name: "socket.io example" } });

socket.on("connect_error", (err) => {
  console.error(`refused: ${err.message} (${err.data?.code})`);
  process.exit(1);
});
socket.on("connected", (c) => console.log(`connected as ${c.name} over ${socket.io.engine.transport.name}`));
let joined;
const ready = new Promise((ok) => (joined = ok));
socket.on("connect", async () => {
  const reply = await socket.timeout(10000).emitWithAck("room:join", { room });
  if (reply.type === "error") {
    console.error(`cannot join ${room}: ${reply.message}`);
    process.exit(1);
  }
  console.log(`in #${room} with ${reply.members.map((m) => m.name).join(", ")}`);
  joined();
});
socket.on("message:receive", (m) => {
  if (m.room === room) console.log(`${m.from.name}: ${m.data.text ?? JSON.stringify(m.data)}`);
});
socket.on("disconnect", (reason) => console.log(`disconnected: ${reason}`));

readline.createInterface({ input: process.stdin }).on("line", async (text) => {
  await ready;
  const ack = await socket.timeout(10000).emitWithAck("message:send", { room, data: { text } });
  if (ack.type === "error") console.error(`not sent: ${ack.code} ${ack.message}`);
});
