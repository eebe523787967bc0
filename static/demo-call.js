// A video call between two members of a room in the demo page: real WebRTC
// (getUserMedia, RTCPeerConnection), signalled through the hub with the
// SDK's `signal` (offer, answer, ICE candidates, bye) to one session.
const $ = (id) => document.getElementById(id);

export class Calls {
  constructor(sb, { toast }) {
    this.sb = sb;
    this.toast = toast;
    this.pc = null; // the call's RTCPeerConnection
    this.peer = null; // { room, session, name }
    this.local = null; // our camera and microphone
    this.ice = []; // candidates that came before the remote description
    this.offer = null; // an incoming offer waiting for Accept
    sb.on("signal", (f) => this.onSignal(f).catch((e) => this.fail(e)));
    sb.on("room:session_left", (f) => f.session === this.peer?.session && this.end("left the room"));
    $("call-hangup").onclick = () => this.hangup();
    $("call-accept").onclick = () => this.accept().catch((e) => this.fail(e));
    $("call-decline").onclick = () => this.decline();
  }

  get busy() {
    return !!(this.pc || this.offer);
  }

  /** Calls `member` of `room`: their first session in it. */
  async call(room, member) {
    if (this.busy) return this.toast("You are already in a call.", "error");
    const session = (member.sessions || []).find((s) => s !== this.sb.sessionId);
    if (!session) return this.toast(`${member.name} cannot be called right now.`, "error");
    this.peer = { room, session, name: member.name };
    try {
      await this.open(`Calling ${member.name}…`);
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      await this.sb.signal(room, session, "offer", { type: offer.type, sdp: offer.sdp });
    } catch (e) {
      this.fail(e);
    }
  }

  async onSignal(f) {
    if (f.kind === "offer") {
      if (this.busy) return this.sb.signal(f.room, f.session, "bye", { reason: "busy" }).catch(() => {});
      this.peer = { room: f.room, session: f.session, name: f.from.name };
      this.offer = f.data;
      $("call-panel").hidden = false;
      $("call-panel").dataset.state = "ringing";
      $("call-status").textContent = `${f.from.name} is calling`;
      return;
    }
    if (f.session !== this.peer?.session) return; // not our call
    if (f.kind === "bye") return this.end(f.data?.reason === "busy" ? "is busy" : "hung up");
    if (!this.pc) return;
    if (f.kind === "answer") {
      await this.pc.setRemoteDescription(f.data);
      await this.flushIce();
    } else if (f.kind === "ice") {
      if (this.pc.remoteDescription) await this.pc.addIceCandidate(f.data);
      else this.ice.push(f.data);
    }
  }

  async accept() {
    const offer = this.offer;
    if (!offer || !this.peer) return;
    this.offer = null;
    await this.open(`In a call with ${this.peer.name}`);
    await this.pc.setRemoteDescription(offer);
    await this.flushIce();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    await this.sb.signal(this.peer.room, this.peer.session, "answer", { type: answer.type, sdp: answer.sdp });
  }

  decline() {
    if (this.peer) this.sb.signal(this.peer.room, this.peer.session, "bye", { reason: "declined" }).catch(() => {});
    this.close();
  }

  hangup() {
    if (this.peer) this.sb.signal(this.peer.room, this.peer.session, "bye").catch(() => {});
    this.close();
  }

  /** Camera and microphone on, a peer connection that sends them and shows what comes back. */
  async open(status) {
    const peer = this.peer;
    $("call-panel").hidden = false;
    $("call-panel").dataset.state = "connecting";
    $("call-status").textContent = status;
    const pc = (this.pc = new RTCPeerConnection());
    pc.onicecandidate = (e) => {
      if (e.candidate) this.sb.signal(peer.room, peer.session, "ice", e.candidate.toJSON()).catch(() => {});
    };
    pc.ontrack = (e) => {
      const video = $("call-remote");
      if (video.srcObject !== e.streams[0]) video.srcObject = e.streams[0];
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      $("call-panel").dataset.state = pc.connectionState;
      if (pc.connectionState === "connected") $("call-status").textContent = `In a call with ${peer.name}`;
      if (pc.connectionState === "failed") this.end("could not be reached");
    };
    this.local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    $("call-local").srcObject = this.local;
    for (const t of this.local.getTracks()) pc.addTrack(t, this.local);
  }

  async flushIce() {
    const waiting = this.ice.splice(0);
    for (const c of waiting) await this.pc.addIceCandidate(c);
  }

  end(why) {
    if (this.peer) this.toast(`${this.peer.name} ${why}.`);
    this.close();
  }

  fail(e) {
    this.toast(`Call failed: ${e.message || e}`, "error");
    this.hangup();
  }

  close() {
    this.pc?.close();
    for (const t of this.local?.getTracks() || []) t.stop();
    Object.assign(this, { pc: null, peer: null, local: null, ice: [], offer: null });
    $("call-remote").srcObject = null;
    $("call-local").srcObject = null;
    $("call-panel").hidden = true;
    $("call-panel").dataset.state = "idle";
  }
}
