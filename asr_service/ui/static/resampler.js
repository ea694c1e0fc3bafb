// Streaming sample-rate conversion and PCM encoding, shared by the microphone worklet and the
// file streamer (an ES module: the AudioWorklet scope and the page both import it).
//
// The resampler is a windowed-sinc low-pass evaluated at each output instant, so it handles any
// ratio (48000 -> 16000, 44100 -> 16000, even upsampling) and removes what would alias above the
// new Nyquist frequency. Weights are normalised per output sample so DC passes exactly.

const ZERO_CROSSINGS = 8; // kernel half-width, in zero crossings of the low-pass sinc
const PASSBAND = 0.94; // cutoff as a fraction of the lower Nyquist frequency (transition band room)
const TABLE_STEPS = 512; // kernel table entries per input sample

export class StreamResampler {
  constructor(inputRate, outputRate) {
    if (!(inputRate > 0) || !(outputRate > 0)) {
      throw new RangeError(`sample rates must be positive (got ${inputRate} -> ${outputRate})`);
    }
    this.inputRate = inputRate;
    this.outputRate = outputRate;
    this.step = inputRate / outputRate; // input samples per output sample
    this.cutoff = Math.min(1, outputRate / inputRate) * PASSBAND; // cycles per input sample * 2
    this.halfWidth = ZERO_CROSSINGS / this.cutoff; // in input samples
    // The kernel is tabulated once: evaluating sin/cos per tap would cost ~10% of a core on the
    // audio thread, enough to make it miss deadlines (and drop audio) on a busy machine.
    this.table = kernelTable(this.cutoff, this.halfWidth);
    this.buffer = new Float32Array(0); // input samples not yet fully consumed
    this.bufferStart = 0; // absolute index of buffer[0]
    this.received = 0; // input samples pushed so far
    this.produced = 0; // output samples emitted so far
  }

  // Feed input samples (Float32Array in [-1, 1]); returns the output samples now computable.
  push(samples) {
    this.append(samples);
    return this.drain(false);
  }

  // End of stream: emit the tail (the right half of the kernel sees zeros).
  flush() {
    return this.drain(true);
  }

  append(samples) {
    const merged = new Float32Array(this.buffer.length + samples.length);
    merged.set(this.buffer, 0);
    merged.set(samples, this.buffer.length);
    this.buffer = merged;
    this.received += samples.length;
  }

  drain(final) {
    const out = [];
    // Output n sits at input position n * step; it can be computed once the kernel's right
    // half is inside what was received (or, at the end, once everything was received).
    const total = Math.floor((this.received * this.outputRate) / this.inputRate);
    for (;;) {
      const centre = this.produced * this.step;
      if (final ? this.produced >= total : centre + this.halfWidth >= this.received) break;
      out.push(this.sampleAt(centre));
      this.produced += 1;
    }
    // Forget input that no future output's kernel reaches.
    const keepFrom = Math.max(this.bufferStart, Math.floor(this.produced * this.step - this.halfWidth) - 1);
    if (keepFrom > this.bufferStart) {
      this.buffer = this.buffer.slice(keepFrom - this.bufferStart);
      this.bufferStart = keepFrom;
    }
    return Float32Array.from(out);
  }

  sampleAt(centre) {
    if (this.step === 1) return this.buffer[centre - this.bufferStart];
    const first = Math.max(this.bufferStart, Math.ceil(centre - this.halfWidth));
    const last = Math.min(this.received - 1, Math.floor(centre + this.halfWidth));
    let acc = 0;
    let weights = 0;
    const table = this.table;
    for (let i = first; i <= last; i += 1) {
      const position = Math.abs(i - centre) * TABLE_STEPS;
      const index = Math.floor(position);
      const fraction = position - index;
      const w = table[index] + fraction * (table[index + 1] - table[index]);
      acc += w * this.buffer[i - this.bufferStart];
      weights += w;
    }
    return weights === 0 ? 0 : acc / weights;
  }
}

// Windowed sinc sampled every 1/TABLE_STEPS input samples on [0, halfWidth] (it is symmetric);
// linear interpolation between entries is accurate to ~1e-6.
function kernelTable(cutoff, halfWidth) {
  const size = Math.ceil(halfWidth * TABLE_STEPS) + 2;
  const table = new Float32Array(size);
  for (let k = 0; k < size; k += 1) {
    const x = k / TABLE_STEPS;
    table[k] = kernel(x * cutoff) * blackman(x / halfWidth);
  }
  return table;
}

function kernel(u) {
  if (u === 0) return 1;
  const a = Math.PI * u;
  return Math.sin(a) / a;
}

// Blackman window on [-1, 1].
function blackman(r) {
  if (r <= -1 || r >= 1) return 0;
  const t = Math.PI * (r + 1);
  return 0.42 - 0.5 * Math.cos(t) + 0.08 * Math.cos(2 * t);
}

// Float32 [-1, 1] -> little-endian signed 16-bit PCM bytes (the protocol's "s16le").
export function floatToS16le(samples) {
  const bytes = new ArrayBuffer(samples.length * 2);
  const view = new DataView(bytes);
  for (let i = 0; i < samples.length; i += 1) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(i * 2, Math.round(s < 0 ? s * 0x8000 : s * 0x7fff), true);
  }
  return bytes;
}

// Average the channels of an AudioBuffer-like list of Float32Arrays into one.
export function mixToMono(channels) {
  if (channels.length === 1) return channels[0];
  const mono = new Float32Array(channels[0].length);
  for (const channel of channels) {
    for (let i = 0; i < mono.length; i += 1) mono[i] += channel[i] / channels.length;
  }
  return mono;
}

// Collects samples into fixed-size frames so every binary message carries the same duration.
export class Framer {
  constructor(frameSamples) {
    this.frameSamples = frameSamples;
    this.pending = new Float32Array(frameSamples);
    this.filled = 0;
  }

  // Returns the complete frames (Float32Array each) that `samples` finished.
  push(samples) {
    const frames = [];
    let offset = 0;
    while (offset < samples.length) {
      const take = Math.min(this.frameSamples - this.filled, samples.length - offset);
      this.pending.set(samples.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.frameSamples) {
        frames.push(this.pending);
        this.pending = new Float32Array(this.frameSamples);
        this.filled = 0;
      }
    }
    return frames;
  }

  // The partial last frame, if any.
  flush() {
    const rest = this.pending.slice(0, this.filled);
    this.filled = 0;
    return rest.length ? [rest] : [];
  }
}
