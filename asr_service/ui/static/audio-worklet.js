// AudioWorklet processor: microphone samples at the context's rate in, 16 kHz PCM frames out.
// Runs on the audio rendering thread; the page receives ready-to-send s16le frames through the
// port, so the main thread only forwards bytes to the WebSocket.
import { Framer, StreamResampler, floatToS16le, mixToMono } from "./resampler.js";

class PcmCaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, frameSamples } = options.processorOptions;
    // `sampleRate` is the AudioWorkletGlobalScope's rate: the context's, e.g. 48000.
    this.resampler = new StreamResampler(sampleRate, targetRate);
    this.framer = new Framer(frameSamples);
    this.peak = 0;
    this.stopped = false;
    this.port.onmessage = (event) => {
      if (event.data === "flush") this.flush();
    };
  }

  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    if (input && input.length > 0) {
      const mono = mixToMono(input);
      for (let i = 0; i < mono.length; i += 1) this.peak = Math.max(this.peak, Math.abs(mono[i]));
      this.emit(this.framer.push(this.resampler.push(mono)));
    }
    return true;
  }

  emit(frames) {
    for (const frame of frames) {
      const pcm = floatToS16le(frame);
      this.port.postMessage({ type: "frame", pcm, samples: frame.length, peak: this.peak }, [pcm]);
      this.peak = 0;
    }
  }

  flush() {
    this.emit(this.framer.push(this.resampler.flush()));
    this.emit(this.framer.flush());
    this.stopped = true;
    this.port.postMessage({ type: "flushed" });
  }
}

registerProcessor("pcm-capture", PcmCaptureProcessor);
