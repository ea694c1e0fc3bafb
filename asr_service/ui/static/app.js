// Live transcription page: microphone or a local file -> 16 kHz s16le -> the native WebSocket
// protocol (start, binary frames, eof) -> partial / final / done events on screen.
import { Framer, StreamResampler, floatToS16le, mixToMono } from "./resampler.js";

const TARGET_RATE = 16000;
const FRAME_MS = 100; // one binary message per 100 ms of audio
const FRAME_SAMPLES = (TARGET_RATE * FRAME_MS) / 1000;

const $ = (id) => document.getElementById(id);
const ui = {
  wsUrl: $("ws-url"),
  token: $("token"),
  tokenRow: $("token-row"),
  state: $("state"),
  form: $("controls"),
  mic: $("mic-button"),
  micLabel: $("mic-label"),
  file: $("file-input"),
  stop: $("stop-button"),
  clear: $("clear-button"),
  message: $("message"),
  finals: $("finals"),
  partial: $("partial"),
  latency: $("latency"),
  latencyMedian: $("latency-median"),
  audioSent: $("audio-sent"),
  segments: $("segment-count"),
  level: $("level"),
  model: $("model-version"),
};

let session = null; // the one active Session, if any

function setState(state, detail = "") {
  ui.state.dataset.state = state;
  ui.state.textContent = detail ? `${state} (${detail})` : state;
  const busy = session !== null && !["closed", "done", "error"].includes(state);
  ui.mic.disabled = busy;
  ui.file.disabled = busy;
  ui.stop.disabled = !busy;
}

function showMessage(text) {
  ui.message.textContent = text;
}

// One WebSocket session: open, send start, stream frames, eof, wait for done.
class Session {
  constructor(url, onStopped) {
    this.url = url;
    this.onStopped = onStopped;
    this.sent = []; // [{endSample, time}] for the latency measure
    this.samplesSent = 0;
    this.latencies = [];
    this.lastPartial = "";
    this.finished = false;
    this.serverError = null; // the last error event, which says more than a close code
    this.segments = new Map(); // segment id -> <li> of its final text
  }

  open() {
    setState("connecting");
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      let started = false;
      ws.onmessage = (event) => {
        if (typeof event.data !== "string") return;
        const message = JSON.parse(event.data);
        if (message.type === "connection" && !started) {
          started = true;
          showModel(message);
          ws.send(JSON.stringify({ type: "start", sample_rate: TARGET_RATE, encoding: "s16le" }));
          setState("streaming");
          resolve();
        }
        this.handle(message);
      };
      ws.onerror = () => showMessage(`could not talk to ${redact(this.url)}`);
      ws.onclose = (event) => {
        const why = event.reason ? `${event.code} ${event.reason}` : `${event.code}`;
        // 1006 before any event: the handshake itself failed (unreachable, or refused with 503
        // while the server starts, drains or is full); browsers do not say which.
        const refused = `could not open ${redact(this.url)} (${why}): is the server up and /ready?`;
        if (!started) reject(new Error(this.serverError ?? refused));
        this.ended(event.code === 1000 ? "closed" : "error", why);
      };
    });
  }

  sendFrame(pcm, samples) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.finished) return;
    this.ws.send(pcm);
    this.samplesSent += samples;
    this.sent.push({ endSample: this.samplesSent, time: performance.now() });
    ui.audioSent.textContent = `${(this.samplesSent / TARGET_RATE).toFixed(1)} s`;
  }

  finish() {
    if (this.finished || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.finished = true;
    this.ws.send(JSON.stringify({ type: "eof" }));
    setState("finishing");
  }

  handle(message) {
    switch (message.type) {
      case "partial":
        if (message.text !== this.lastPartial) {
          this.lastPartial = message.text;
          this.measure(message);
        }
        ui.partial.textContent = message.text;
        break;
      case "final":
        // Not measured: a final waits for the endpoint silence by design, so its delay says
        // nothing about how quickly the server keeps up.
        this.lastPartial = "";
        ui.partial.textContent = "";
        this.commit(message);
        break;
      case "done":
        setState("done");
        break;
      case "error":
        this.serverError = `server error: ${message.message || message.code || JSON.stringify(message)}`;
        showMessage(this.serverError);
        break;
      case "closing":
        showMessage(`server closing: ${message.reason || "draining"}`);
        break;
      default:
        break; // connection (handled in open), and anything newer than this page
    }
  }

  commit(message) {
    if (!message.text) return; // an end of stream with nothing new to say
    const id = message.segment_id ?? this.segments.size;
    let item = this.segments.get(id);
    if (!item) {
      item = document.createElement("li");
      this.segments.set(id, item);
      ui.finals.append(item);
    }
    item.dataset.segment = String(id);
    item.textContent = message.text;
    const span = offsets(message);
    // Shown by CSS (li::after), so the segment's text stays exactly what the server sent.
    if (span) item.dataset.span = `${span.start.toFixed(1)}–${span.end.toFixed(1)} s`;
    ui.segments.textContent = String(ui.finals.children.length);
  }

  // Latency = now - when the audio up to the partial's end offset finished being sent.
  measure(message) {
    const span = offsets(message);
    if (!span || !message.text) return;
    const endSample = Math.round(span.end * TARGET_RATE);
    const index = this.sent.findIndex((f) => f.endSample >= endSample);
    const frame = index >= 0 ? this.sent[index] : this.sent[this.sent.length - 1];
    if (!frame) return;
    if (index > 0) this.sent.splice(0, index); // offsets only grow: older frames are done with
    const ms = performance.now() - frame.time;
    this.latencies.push(ms);
    ui.latency.textContent = `${Math.round(ms)} ms`;
    ui.latencyMedian.textContent = `${Math.round(median(this.latencies))} ms`;
  }

  close() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "client stopped");
  }

  ended(state, detail) {
    if (session === this) session = null;
    setState(state, detail);
    this.onStopped();
  }
}

function offsets(message) {
  const { start, end } = message;
  return typeof end === "number" ? { start: typeof start === "number" ? start : 0, end } : null;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function redact(url) {
  const parsed = new URL(url);
  if (parsed.searchParams.has("token")) parsed.searchParams.set("token", "…");
  return parsed.toString();
}

function showModel(info) {
  const model = info.model ?? info;
  const version = model.version ?? model.model_version;
  if (!version) return;
  const sha = model.sha256 ?? model.model_sha256;
  ui.model.textContent = sha ? `${version} · ${String(sha).slice(0, 12)}` : String(version);
  if (sha) ui.model.title = `sha256 ${sha}`;
}

function sessionUrl() {
  const url = new URL(ui.wsUrl.value.trim());
  if (!["ws:", "wss:"].includes(url.protocol)) throw new Error("the server address must start with ws:// or wss://");
  const token = ui.token.value.trim();
  if (token) url.searchParams.set("token", token);
  return url.toString();
}

async function startSession(onStopped) {
  showMessage("");
  ui.partial.textContent = "";
  const created = new Session(sessionUrl(), onStopped);
  session = created;
  await created.open();
  return created;
}

// ------------------------------------------------------------------------------ microphone
async function startMicrophone() {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    throw new Error("the microphone needs https or localhost; use the file picker instead");
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    // Raw audio: the models are trained on unprocessed speech, and echo cancellation, noise
    // suppression and gain control reshape it (and make what the server hears hard to test).
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const context = new AudioContext();
  await context.audioWorklet.addModule(new URL("./audio-worklet.js", import.meta.url));
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-capture", {
    numberOfInputs: 1,
    numberOfOutputs: 0,
    channelCount: 1,
    channelCountMode: "explicit",
    processorOptions: { targetRate: TARGET_RATE, frameSamples: FRAME_SAMPLES },
  });
  const release = () => {
    source.disconnect();
    node.disconnect();
    stream.getTracks().forEach((track) => track.stop());
    context.close();
    ui.mic.classList.remove("recording");
    ui.micLabel.textContent = "Start microphone";
    ui.level.value = 0;
  };
  let active;
  try {
    active = await startSession(release);
  } catch (error) {
    release();
    throw error;
  }
  node.port.onmessage = (event) => {
    const data = event.data;
    if (data.type === "frame") {
      active.sendFrame(data.pcm, data.samples);
      ui.level.value = data.peak;
    } else if (data.type === "flushed") {
      active.finish();
    }
  };
  source.connect(node);
  await context.resume();
  ui.mic.classList.add("recording");
  ui.micLabel.textContent = "Recording…";
  // Stopping drains the resampler tail through the worklet before eof is sent.
  active.stop = () => node.port.postMessage("flush");
}

// ------------------------------------------------------------------------------ file
async function streamFile(file) {
  setState("decoding", file.name);
  const decoder = new AudioContext();
  let decoded;
  try {
    decoded = await decoder.decodeAudioData(await file.arrayBuffer());
  } catch (error) {
    throw new Error(`cannot decode ${file.name}: ${error.message || error}`);
  } finally {
    decoder.close();
  }
  const channels = [];
  for (let c = 0; c < decoded.numberOfChannels; c += 1) channels.push(decoded.getChannelData(c));
  const resampler = new StreamResampler(decoded.sampleRate, TARGET_RATE);
  const framer = new Framer(FRAME_SAMPLES);
  const frames = [...framer.push(resampler.push(mixToMono(channels))), ...framer.push(resampler.flush()), ...framer.flush()];

  let cancelled = false;
  let timer = null;
  const active = await startSession(() => {
    cancelled = true;
    clearTimeout(timer);
  });
  active.stop = () => {
    cancelled = true;
    clearTimeout(timer);
    active.finish();
  };
  // Real-time pace: frame k leaves at t0 + k * FRAME_MS, scheduled against the clock so
  // timer jitter does not accumulate.
  const t0 = performance.now();
  let index = 0;
  const tick = () => {
    if (cancelled) return;
    while (index < frames.length && performance.now() - t0 >= index * FRAME_MS) {
      const frame = frames[index];
      active.sendFrame(floatToS16le(frame), frame.length);
      ui.level.value = Math.max(...frame.map(Math.abs));
      index += 1;
    }
    if (index >= frames.length) {
      ui.level.value = 0;
      active.finish();
      return;
    }
    timer = setTimeout(tick, Math.max(0, t0 + index * FRAME_MS - performance.now()));
  };
  tick();
}

// ------------------------------------------------------------------------------ wiring
async function run(action) {
  try {
    await action();
  } catch (error) {
    showMessage(error.message || String(error));
    if (session) session.close();
    session = null;
    setState("error");
  }
}

ui.form.addEventListener("submit", (event) => event.preventDefault()); // Enter must not reload
ui.mic.addEventListener("click", () => run(startMicrophone));
ui.file.addEventListener("change", () => {
  const file = ui.file.files[0];
  ui.file.value = ""; // picking the same file again streams it again
  if (file) run(() => streamFile(file));
});
ui.stop.addEventListener("click", () => session?.stop?.());
ui.clear.addEventListener("click", () => {
  ui.finals.replaceChildren();
  ui.partial.textContent = "";
  ui.segments.textContent = "0";
  ui.latency.textContent = "–";
  ui.latencyMedian.textContent = "–";
});

async function loadConfig() {
  const params = new URLSearchParams(location.search);
  let config = {};
  try {
    const response = await fetch("ui/config.json", { cache: "no-store" });
    if (response.ok) config = await response.json();
  } catch {
    // Served from elsewhere (or the route is off): fall back to the defaults below.
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const host = location.hostname || "localhost";
  const port = config.ws_port ?? 8765;
  const fallback = `${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}${config.ws_path ?? "/"}`;
  ui.wsUrl.value = params.get("ws") || config.ws_url || fallback;
  ui.token.value = params.get("token") || "";
  ui.tokenRow.hidden = !(config.auth_required || params.has("token"));
  showModel(config);
  setState("idle");
}

loadConfig();
