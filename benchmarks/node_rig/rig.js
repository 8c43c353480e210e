// A load rig for bench_peers.py --rig node: the simulated Twilio callers and the Realtime stand-in
// on one Node.js event loop, light enough to keep time at 200 real-time calls on one CPU, where the
// Python rig (bridge/loadtest, bridge/stand_ins) runs at 85-90 % of its CPU and sends in bursts.
//
// It plans nothing and analyses nothing: Python writes each call's messages (the same text
// bridge/stand_ins/twilio_caller.py sends, tagged by bridge/stand_ins/audio_tags.py), this rig sends
// them on time and records stamps, and Python reads the stamps with bridge/loadtest/caller_view.py.
// The stand-in is the part of bridge/stand_ins/realtime_ws.py that the peers use over WebSocket, for
// audio/pcmu: session.created/updated, server VAD (RMS over 20 ms against threshold_dbfs) with
// speech_started/stopped and barge-in, responses streamed as output_audio.delta `speed` times faster
// than real time in chunks of seeded random length, truncate, cancel; the same event shapes
// (tests/benchmarks/test_node_rig.py validates each against the openai package's models).
//
// Stamps are CLOCK_MONOTONIC seconds (process.hrtime), the clock of Python's time.monotonic().
// Protocol on stdin/stdout, one JSON object a line:
//   out  {"realtime_port": P}                       once the stand-in listens
//   in   {"run": PLAN_FILE, "out": RESULT_FILE}      PLAN_FILE: a line per call, each with its target
//   out  {"started": MONOTONIC_S}                   the plan is read; the run starts then (0.2 s on)
//   out  {"done": RESULT_FILE, "t0": MONOTONIC_S}   every call has ended, the stamps are written
// Run: node rig.js CONFIG_FILE   (CONFIG: see benchmarks/node_rig.py, `config_for`)
'use strict';

const fs = require('fs');
const { PerformanceObserver } = require('perf_hooks');
const readline = require('readline');
const { WebSocket, WebSocketServer } = require('ws');

const now = () => Number(process.hrtime.bigint()) / 1e9;
const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const RESPONSE_AUDIO = Buffer.from(config.response_audio_b64, 'base64');
const ULAW = Int32Array.from(config.ulaw_table); // mu-law byte -> linear sample
const WINDOW = 160; // 20 ms of 8 kHz mu-law: one VAD window
const LOUD_MEAN_SQUARE = (32768 * 10 ** (config.threshold_dbfs / 20)) ** 2;
const PAYLOAD_SIZE = 1024 * 1024;

// ---------------------------------------------------------------------------- audio tags (AI)
// bridge/stand_ins/audio_tags.py's AI tag: magic, session (4 symbols), stream offset (6), checksum (2).
const AI_MAGIC = [0xf6, 0x7b, 0xf3];
const AI_TAG_LEN = AI_MAGIC.length + 4 + 6 + 2;
const symbol = (v) => 0x70 | ((v & 0x10) << 3) | (v & 0x0f);
const digits = (value, width) => Array.from({ length: width }, (_, i) => (value >>> (5 * (width - 1 - i))) & 0x1f);

function aiTag(session, offset) {
  let check = 0;
  for (const v of [session, offset]) check = (check * 31 + v + 7) % (1 << 10);
  return [...AI_MAGIC, ...[...digits(session, 4), ...digits(offset, 6), ...digits(check, 2)].map(symbol)];
}

function tagAudio(audio, session, base) {
  const out = Buffer.from(audio);
  for (let pos = 0; pos + AI_TAG_LEN <= out.length; pos += WINDOW) out.set(aiTag(session, base + pos), pos);
  return out;
}

// Seeded mulberry32: each session's chunk lengths repeat from run to run.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------- Realtime stand-in
const clone = (x) => JSON.parse(JSON.stringify(x));
const APPEND_HEADS = ['{"type":"input_audio_buffer.append","audio":"', '{"type": "input_audio_buffer.append", "audio": "'];
let nextSession = 0;
const sessions = []; // every session since the last run's stamps were taken

// An audio format is replaced whole (pcm's `rate` does not outlive a switch to pcmu), as the
// Python stand-in's normalise_format does; other objects merge key by key.
function deepMerge(base, patch) {
  const out = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    out[k] = k !== 'format' && v && typeof v === 'object' && !Array.isArray(v) && base[k] && typeof base[k] === 'object'
      ? deepMerge(base[k], v) : v;
  }
  return out;
}

class Session {
  constructor(ws, model) {
    this.ws = ws;
    this.id = ++nextSession;
    this.counter = 0;
    this.random = rng(config.seed * 1000003 + this.id);
    this.items = [];
    this.assistantMs = new Map();
    this.response = null;
    this.timer = null;
    this.vad = { speaking: false, silenceMs: 0, itemId: null, samplesIn: 0, pending: Buffer.alloc(0) };
    this.eventsIn = 0;
    this.eventsOut = 0;
    this.inputs = []; // [arrived, audio base64] per append
    this.outputs = []; // [stream start, stream end, emitted] per delta
    this.base = 0; // where the response under way starts in the output stream
    this.sent = 0; // output stream bytes sent as deltas so far
    this.session = this.defaultSession(model);
    sessions.push(this);
    this.emit({ type: 'session.created', session: clone(this.session) });
  }

  newId(prefix) {
    this.counter += 1;
    return `${prefix}_${String(this.counter).padStart(6, '0')}`;
  }

  emit(event) {
    const { type, ...rest } = event;
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type, event_id: this.newId('event'), ...rest }));
    this.eventsOut += 1;
  }

  error(code, message, clientId, param = null) {
    this.emit({ type: 'error', error: { type: 'invalid_request_error', code, message, param, event_id: clientId } });
  }

  defaultSession(model) {
    return {
      type: 'realtime', object: 'realtime.session', id: this.newId('sess'), model,
      output_modalities: ['audio'], instructions: config.instructions, tools: [], tool_choice: 'auto',
      max_output_tokens: 'inf', tracing: null, truncation: 'auto', prompt: null,
      expires_at: Math.floor(Date.now() / 1000) + 3600, include: null,
      audio: {
        input: {
          format: { type: 'audio/pcm', rate: 24000 }, transcription: null, noise_reduction: null,
          turn_detection: {
            type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500,
            idle_timeout_ms: null, create_response: true, interrupt_response: true,
          },
        },
        output: { format: { type: 'audio/pcm', rate: 24000 }, voice: config.voice, speed: 1.0 },
      },
    };
  }

  receive(text) {
    this.eventsIn += 1;
    for (const head of APPEND_HEADS) {
      if (text.startsWith(head) && text.endsWith('"}') && text.indexOf('"', head.length) === text.length - 2) {
        this.append(text.slice(head.length, -2), null);
        return;
      }
    }
    let event;
    try {
      event = JSON.parse(text);
    } catch (exc) {
      this.error('invalid_json', `The server could not parse the event as JSON: ${exc.message}`, null);
      return;
    }
    if (!event || typeof event !== 'object' || typeof event.type !== 'string') {
      this.error('invalid_event', "The 'type' field is missing or not a string.", null);
      return;
    }
    const clientId = typeof event.event_id === 'string' ? event.event_id : null;
    switch (event.type) {
      case 'session.update': return this.sessionUpdate(event, clientId);
      case 'input_audio_buffer.append': return this.append(event.audio, clientId);
      case 'input_audio_buffer.commit': return this.commitBuffer(this.vad.itemId || this.newId('item'));
      case 'input_audio_buffer.clear':
        this.vad.speaking = false;
        this.vad.itemId = null;
        return this.emit({ type: 'input_audio_buffer.cleared' });
      case 'conversation.item.truncate': return this.truncate(event, clientId);
      case 'response.create':
        if (this.response) {
          return this.error('conversation_already_has_active_response',
            `Conversation already has an active response in progress: ${this.response.id}.`, clientId);
        }
        return this.startResponse();
      case 'response.cancel':
        if (!this.response) return this.error('response_cancel_not_active', 'Cancellation failed: no active response found.', clientId);
        return this.finishResponse('cancelled', { type: 'cancelled', reason: 'client_cancelled' });
      default:
        return this.error('invalid_value', `Invalid value: '${event.type}'. Supported values are documented `
          + 'client event types (this stand-in serves the WebSocket subset the peers use).', clientId, 'type');
    }
  }

  sessionUpdate(event, clientId) {
    const patch = event.session;
    if (!patch || typeof patch !== 'object' || patch.type !== 'realtime') {
      return this.error('invalid_value', "Invalid 'session.type': expected 'realtime'.", clientId, 'session.type');
    }
    const { type, ...rest } = patch;
    const merged = deepMerge(this.session, rest);
    for (const dir of ['input', 'output']) {
      const fmt = merged.audio[dir].format;
      if (!fmt || fmt.type !== 'audio/pcmu') {
        return this.error('invalid_value', `This stand-in speaks audio/pcmu only (audio.${dir}.format).`,
          clientId, `session.audio.${dir}.format`);
      }
    }
    this.session = merged;
    this.emit({ type: 'session.updated', session: clone(this.session) });
  }

  append(audio, clientId) {
    if (typeof audio !== 'string') return this.error('missing_required_parameter', "Missing required parameter: 'audio'.", clientId, 'audio');
    this.inputs.push([now(), audio]);
    let data = Buffer.from(audio, 'base64');
    const v = this.vad;
    if (v.pending.length) data = Buffer.concat([v.pending, data]);
    const whole = data.length - (data.length % WINDOW);
    for (let start = 0; start < whole; start += WINDOW) this.vadWindow(data, start);
    v.pending = Buffer.from(data.subarray(whole));
  }

  vadWindow(data, start) {
    const v = this.vad;
    const before = v.samplesIn;
    v.samplesIn += WINDOW;
    const td = this.session.audio.input.turn_detection;
    if (!td) return;
    let ss = 0;
    for (let i = start; i < start + WINDOW; i++) {
      const x = ULAW[data[i]];
      ss += x * x;
    }
    const loud = ss / WINDOW >= LOUD_MEAN_SQUARE;
    if (!v.speaking) {
      if (!loud) return;
      v.speaking = true;
      v.silenceMs = 0;
      v.itemId = this.newId('item');
      const prefix = td.prefix_padding_ms || 300;
      this.emit({ type: 'input_audio_buffer.speech_started', audio_start_ms: Math.max(0, Math.round(before / 8) - prefix), item_id: v.itemId });
      if (td.interrupt_response !== false && this.response) this.finishResponse('cancelled', { type: 'cancelled', reason: 'turn_detected' });
      return;
    }
    v.silenceMs = loud ? 0 : v.silenceMs + 20;
    if (v.silenceMs >= (td.silence_duration_ms || 500)) {
      const itemId = v.itemId || this.newId('item');
      v.speaking = false;
      v.itemId = null;
      this.emit({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: Math.round(v.samplesIn / 8), item_id: itemId });
      this.commitBuffer(itemId);
      if (td.create_response !== false && !this.response) this.startResponse();
    }
  }

  commitBuffer(itemId) {
    const previous = this.items.length ? this.items[this.items.length - 1].id : null;
    this.emit({ type: 'input_audio_buffer.committed', item_id: itemId, previous_item_id: previous });
    const item = { id: itemId, object: 'realtime.item', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }] };
    this.items.push(item);
    this.emit({ type: 'conversation.item.added', previous_item_id: previous, item: clone(item) });
    this.emit({ type: 'conversation.item.done', previous_item_id: previous, item: clone(item) });
  }

  truncate(event, clientId) {
    const { item_id: itemId, audio_end_ms: endMs, content_index: index } = event;
    if (typeof itemId !== 'string' || !this.assistantMs.has(itemId)) {
      return this.error('invalid_value', `Conversation item with id '${itemId}' is not an assistant audio message.`, clientId, 'item_id');
    }
    if (index !== 0) return this.error('invalid_value', "Invalid 'content_index': expected 0.", clientId, 'content_index');
    if (!Number.isInteger(endMs) || endMs < 0) return this.error('invalid_value', "Invalid 'audio_end_ms': expected an integer >= 0.", clientId, 'audio_end_ms');
    if (endMs > this.assistantMs.get(itemId)) {
      return this.error('invalid_value', `Audio content of ${Math.round(this.assistantMs.get(itemId))}ms is shorter than ${endMs}ms.`, clientId, 'audio_end_ms');
    }
    this.emit({ type: 'conversation.item.truncated', item_id: itemId, content_index: 0, audio_end_ms: endMs });
  }

  responseObject(r, status, output, details, usage) {
    return {
      object: 'realtime.response', id: r.id, status, status_details: details, output, conversation_id: 'conv_default',
      output_modalities: ['audio'], max_output_tokens: 'inf',
      audio: { output: { format: { type: 'audio/pcmu' }, voice: this.session.audio.output.voice } }, usage, metadata: null,
    };
  }

  assistantItem(r, status, withContent) {
    return {
      id: r.itemId, object: 'realtime.item', type: 'message', role: 'assistant', status,
      content: withContent ? [{ type: 'output_audio', transcript: config.transcript }] : [],
    };
  }

  startResponse() {
    this.base = this.sent;
    const audio = tagAudio(RESPONSE_AUDIO, this.id, this.base);
    const lo = config.min_chunk_ms * 8;
    const hi = config.max_chunk_ms * 8;
    const chunks = [];
    for (let pos = 0; pos < audio.length;) {
      let size = lo + Math.floor(this.random() * (hi - lo + 1));
      if (size % WINDOW === 0) size += 1; // never a whole number of 20 ms frames, as the Python stand-in
      const end = Math.min(audio.length, pos + size);
      chunks.push([pos, end]);
      pos = end;
    }
    const r = { id: this.newId('resp'), itemId: this.newId('item'), started: now(), audio, chunks, next: 0, bytesSent: 0 };
    this.response = r;
    this.emit({ type: 'response.created', response: this.responseObject(r, 'in_progress', [], null, null) });
    const previous = this.items.length ? this.items[this.items.length - 1].id : null;
    this.assistantMs.set(r.itemId, 0);
    const item = this.assistantItem(r, 'in_progress', false);
    this.emit({ type: 'response.output_item.added', response_id: r.id, output_index: 0, item: clone(item) });
    this.items.push(item);
    this.emit({ type: 'conversation.item.added', previous_item_id: previous, item: clone(item) });
    this.emit({ type: 'response.content_part.added', response_id: r.id, item_id: r.itemId, output_index: 0, content_index: 0, part: { type: 'audio', transcript: '' } });
    this.emit({ type: 'response.output_audio_transcript.delta', response_id: r.id, item_id: r.itemId, output_index: 0, content_index: 0, delta: config.transcript });
    this.arm();
  }

  deadline(r) {
    const startBytes = r.next < r.chunks.length ? r.chunks[r.next][0] : r.audio.length;
    return r.started + startBytes / 8000 / config.speed;
  }

  arm() {
    clearTimeout(this.timer);
    this.timer = null;
    const r = this.response;
    if (!r) return;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, (this.deadline(r) - now()) * 1000));
  }

  onTimer() {
    const t = now();
    let r = this.response;
    while (r && r === this.response && t >= this.deadline(r)) {
      if (r.next >= r.chunks.length) {
        this.finishResponse('completed', null);
        break;
      }
      const [a, b] = r.chunks[r.next];
      r.next += 1;
      r.bytesSent = b;
      this.assistantMs.set(r.itemId, b / 8);
      this.outputs.push([this.base + a, this.base + b, now()]);
      this.sent = this.base + b;
      this.emit({ type: 'response.output_audio.delta', response_id: r.id, item_id: r.itemId, output_index: 0, content_index: 0, delta: r.audio.subarray(a, b).toString('base64') });
      r = this.response;
    }
    this.arm();
  }

  finishResponse(status, details) {
    const r = this.response;
    this.response = null;
    this.arm();
    const common = { response_id: r.id, item_id: r.itemId, output_index: 0, content_index: 0 };
    this.emit({ type: 'response.output_audio.done', ...common });
    this.emit({ type: 'response.output_audio_transcript.done', ...common, transcript: config.transcript });
    this.emit({ type: 'response.content_part.done', ...common, part: { type: 'audio', transcript: config.transcript } });
    const item = this.assistantItem(r, status === 'completed' ? 'completed' : 'incomplete', true);
    const idx = this.items.findIndex((s) => s.id === r.itemId);
    this.items[idx] = item;
    this.emit({ type: 'response.output_item.done', response_id: r.id, output_index: 0, item: clone(item) });
    this.emit({ type: 'conversation.item.done', previous_item_id: idx > 0 ? this.items[idx - 1].id : null, item: clone(item) });
    const audioTokens = Math.max(1, Math.round(r.bytesSent / 8 / 50));
    const textTokens = Math.max(1, config.transcript.split(/\s+/).length);
    const usage = {
      total_tokens: 10 + audioTokens + textTokens, input_tokens: 10, output_tokens: audioTokens + textTokens,
      input_token_details: { text_tokens: 10, audio_tokens: 0, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } },
      output_token_details: { text_tokens: textTokens, audio_tokens: audioTokens },
    };
    this.emit({ type: 'response.done', response: this.responseObject(r, status, [clone(item)], details, usage) });
  }

  close() {
    clearTimeout(this.timer);
    this.response = null;
  }

  take() {
    const rec = { session: this.id, events_in: this.eventsIn, events_out: this.eventsOut, inputs: this.inputs, outputs: this.outputs };
    this.inputs = [];
    this.outputs = [];
    this.eventsIn = 0;
    this.eventsOut = 0;
    return rec;
  }
}

// As OpenAI (and the Python stand-in): `Authorization: Bearer <any non-empty key>`, else HTTP 401.
const verifyClient = (info, answer) => answer(/^Bearer \S+$/.test(info.req.headers.authorization || ''), 401, 'Incorrect API key provided.');
const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: PAYLOAD_SIZE, verifyClient });
server.on('connection', (ws, req) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname !== '/v1/realtime') {
    ws.close(1008, 'unknown path');
    return;
  }
  const s = new Session(ws, url.searchParams.get('model') || config.model);
  ws.on('message', (data, isBinary) => {
    if (!isBinary) s.receive(data.toString());
  });
  ws.on('close', () => s.close());
  ws.on('error', () => s.close());
});

// ---------------------------------------------------------------------------- callers
// A binary min-heap of [due, call]: one timer sends every caller's frames that are due.
const heap = [];
function push(item) {
  heap.push(item);
  for (let i = heap.length - 1; i > 0;) {
    const p = (i - 1) >> 1;
    if (heap[p][0] <= heap[i][0]) break;
    [heap[p], heap[i]] = [heap[i], heap[p]];
    i = p;
  }
}
function pop() {
  const top = heap[0];
  const last = heap.pop();
  if (heap.length) {
    heap[0] = last;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && heap[l][0] < heap[m][0]) m = l;
      if (r < heap.length && heap[r][0] < heap[m][0]) m = r;
      if (m === i) break;
      [heap[m], heap[i]] = [heap[i], heap[m]];
      i = m;
    }
  }
  return top;
}
let pacer = null;
function pace() {
  clearTimeout(pacer);
  pacer = null;
  const t = now();
  while (heap.length && heap[0][0] <= t) {
    const call = pop()[1];
    call.sendFrame();
  }
  if (heap.length) pacer = setTimeout(pace, Math.max(0, (heap[0][0] - now()) * 1000));
}
function schedule(due, call) {
  push([due, call]);
  if (heap[0][1] === call) {
    clearTimeout(pacer);
    pacer = setTimeout(pace, Math.max(0, (due - now()) * 1000));
  }
}

// Twilio's playout, as bridge/stand_ins/twilio_caller.py's TwilioPlayout models it: media plays at
// 8000 bytes a second in order; a mark is echoed once the audio queued before it has played;
// `clear` drops the queue and echoes every pending mark at once.
class Caller {
  constructor(plan, t0, done) {
    this.plan = plan;
    this.done = done;
    this.result = { leg: plan.leg, index: plan.index, failed: null, refused: false, sent: [], received: [], hangup_at: null, messages_sent: 0, messages_received: 0, frames_sent: 0 };
    this.next = 0;
    this.playUntil = 0;
    this.marks = []; // [due, name]
    this.markTimer = null;
    this.markSeq = 1000;
    this.finished = false;
    setTimeout(() => this.connect(plan.target), Math.max(0, (t0 + plan.start_at - now()) * 1000));
  }

  connect(target) {
    const ws = new WebSocket(target, { perMessageDeflate: false, maxPayload: PAYLOAD_SIZE });
    this.ws = ws;
    ws.on('unexpected-response', (req, res) => {
      this.result.refused = res.statusCode === 503;
      this.result.failed = this.result.refused ? null : `upgrade answered ${res.statusCode}`;
      this.finish();
      req.destroy(); // with this listener, ending the refused upgrade is ours to do
    });
    ws.on('error', (err) => {
      if (!this.finished && this.result.hangup_at === null) this.result.failed = String(err.message || err);
      this.finish();
    });
    ws.on('open', () => {
      for (const text of this.plan.open) this.send(text);
      this.t0 = now();
      if (this.plan.frames.length) schedule(this.t0 + this.plan.frames[0][1], this);
      else this.hangupLater();
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const t = now();
      this.result.messages_received += 1;
      let msg;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        return; // not for a caller to play; the peer's own checks are what a benchmark measures
      }
      if (msg.event === 'media') {
        const payload = msg.media.payload;
        this.result.received.push([t, payload]);
        this.playUntil = Math.max(this.playUntil, t) + Buffer.byteLength(payload, 'base64') / 8000;
      } else if (msg.event === 'mark') {
        this.marks.push([Math.max(this.playUntil, t), msg.mark.name]);
        this.armMarks();
      } else if (msg.event === 'clear') {
        this.playUntil = t;
        const names = this.marks.map((m) => m[1]);
        this.marks = [];
        for (const name of names) this.echo(name);
      }
    });
    ws.on('close', () => this.finish());
  }

  send(text) {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(text);
    this.result.messages_sent += 1;
    return true;
  }

  sendFrame() {
    const [frame, at, text] = this.plan.frames[this.next];
    this.next += 1;
    const t = now();
    if (this.send(text)) {
      this.result.sent.push([frame, t, this.t0 + at]); // [frame, sent, due]: how well the rig kept time
      this.result.frames_sent += 1;
    }
    if (this.next < this.plan.frames.length && this.ws.readyState === WebSocket.OPEN) {
      schedule(this.t0 + this.plan.frames[this.next][1], this);
    } else {
      this.hangupLater();
    }
  }

  hangupLater() {
    setTimeout(() => {
      this.result.hangup_at = now();
      this.send(this.plan.stop);
      // the peer ends the call on stop; a peer that does not is closed after 5 s
      setTimeout(() => this.ws.close(), 5000).unref();
    }, Math.max(0, (this.t0 + this.plan.hangup_after - now()) * 1000));
  }

  armMarks() {
    clearTimeout(this.markTimer);
    if (!this.marks.length) return;
    this.markTimer = setTimeout(() => {
      const t = now();
      while (this.marks.length && this.marks[0][0] <= t) this.echo(this.marks.shift()[1]);
      this.armMarks();
    }, Math.max(0, (this.marks[0][0] - now()) * 1000));
  }

  echo(name) {
    this.markSeq += 1;
    this.send(JSON.stringify({ event: 'mark', sequenceNumber: String(this.markSeq), streamSid: this.plan.stream_sid, mark: { name } }));
  }

  finish() {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.markTimer);
    this.done(this.result);
  }
}

// The rig's garbage-collection pauses during a run: a long one stalls every caller at once.
let gcPauses = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push(e.duration);
}).observe({ entryTypes: ['gc'] });

async function run(cmd) {
  gcPauses = [];
  const plans = fs.readFileSync(cmd.run, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
  const t0 = now() + 0.2;
  process.stdout.write(`${JSON.stringify({ started: t0 })}\n`);
  const results = await new Promise((resolve) => {
    const out = [];
    if (!plans.length) resolve(out);
    for (const plan of plans) {
      // eslint-disable-next-line no-new
      new Caller(plan, t0, (r) => {
        out.push(r);
        if (out.length === plans.length) resolve(out);
      });
    }
  });
  await new Promise((r) => setTimeout(r, 1000)); // the peers' last events reach the stand-in
  const stamps = sessions.map((s) => s.take());
  sessions.splice(0, sessions.length, ...sessions.filter((s) => s.ws.readyState === WebSocket.OPEN));
  const gc = { count: gcPauses.length, total_ms: gcPauses.reduce((a, b) => a + b, 0), max_ms: Math.max(0, ...gcPauses) };
  fs.writeFileSync(cmd.out, JSON.stringify({ calls: results, sessions: stamps, gc }));
  process.stdout.write(`${JSON.stringify({ done: cmd.out, t0 })}\n`);
}

server.on('listening', () => {
  process.stdout.write(`${JSON.stringify({ realtime_port: server.address().port })}\n`);
  const lines = readline.createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  lines.on('line', (line) => {
    if (!line.trim()) return;
    queue = queue.then(() => run(JSON.parse(line)));
  });
  lines.on('close', () => queue.then(() => process.exit(0)));
});
