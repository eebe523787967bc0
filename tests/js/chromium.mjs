// Headless Chromium (Debian's, driven by playwright-core) for the browser
// tests: one persistent profile per test file, removed after.

import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { WAIT } from "./helpers.mjs";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** A browser with its own profile; `close()` ends it and removes the profile. */
export async function launch(extraFlags = []) {
  const profile = mkdtempSync(path.join(os.tmpdir(), "switchboard-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...FLAGS, ...extraFlags],
    viewport: { width: 1200, height: 760 },
  });
  browser.setDefaultTimeout(WAIT);
  return {
    browser,
    async close() {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
