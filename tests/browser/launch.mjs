// The headless Chromium every browser test (and web/measure.mjs) runs: Debian's, or
// $CHROMIUM, with WebGPU on (SwiftShader where no GPU is) and no background traffic of its
// own, so that every request a test sees comes from the page.
import { chromium } from 'playwright-core';

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--enable-unsafe-webgpu', '--no-sandbox', '--no-first-run', '--disable-quic', '--disable-sync',
      '--disable-background-networking', '--disable-component-update', '--disable-default-apps',
    ],
  });
}
