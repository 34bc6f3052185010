// The demo page end to end in headless Chromium (Debian's package; playwright-core drives
// it, no browser download): save a key, see a user's interests and recommendations, upload
// a photo, get the generated image back with its blend. Screenshot: test-artifacts/e2e/.
// Needs STYLECAST_URL and STYLECAST_ADMIN_KEY (scripts/with-service.sh sets both).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const root = resolve(import.meta.dirname, "../..");
const url = process.env.STYLECAST_URL;
const key = process.env.STYLECAST_ADMIN_KEY;
const photo = join(root, "onnx/styles/content_heldout/coffee.png");
const artifacts = join(root, "test-artifacts/e2e");

async function withPage(run) {
  const profile = mkdtempSync(join(tmpdir(), "stylecast-e2e-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: 1100, height: 1300 },
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    const errors = [];
    page.on("pageerror", (err) => errors.push(err.message));
    await run(page);
    assert.deepEqual(errors, [], "the page threw");
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

test("the demo page restyles an uploaded photo for a demo user", { timeout: 120_000 }, async () => {
  assert.ok(url && key, "STYLECAST_URL and STYLECAST_ADMIN_KEY must be set");
  mkdirSync(artifacts, { recursive: true });
  await withPage(async (page) => {
    await page.goto(url);
    await page.fill("#key", key);
    await page.click("#save-key");
    assert.equal(await page.evaluate(() => localStorage.getItem("stylecast.apiKey")), key);

    // ana's engagement (stylecast demo) gives her an interest blend and recommendations.
    await page.waitForSelector("#interests li");
    await page.waitForSelector("#recommendations li");
    const interests = await page.locator("#interests li").allTextContents();
    assert.ok(interests.length >= 1, "no interests shown");
    assert.match(await page.textContent("#blend-source"), /source: (interests|popularity)/);
    const choices = await page.locator("#style option").count();
    assert.ok(choices >= 3, `expected styled influencers to choose from, got ${choices - 1}`);

    // "my blend" at strength 0.8.
    await page.setInputFiles("#photo", photo);
    await page.fill("#strength", "0.8");
    await page.click("#generate");
    await page.waitForSelector("body[data-generated=true]", { timeout: 90_000 });
    const status = await page.textContent("#status");
    assert.match(status, /^done in \d+ ms$/);
    const size = await page.evaluate(async () => {
      const img = document.getElementById("result");
      await img.decode();
      return [img.naturalWidth, img.naturalHeight];
    });
    assert.ok(size[0] > 0 && size[1] > 0, `generated image not shown: ${size}`);
    const blend = await page.locator("#blend li").allTextContents();
    assert.ok(blend.length >= 1, "blend weights not shown");
    assert.match(await page.textContent("#result-caption"), /interests|popularity/);
    await page.screenshot({ path: join(artifacts, "demo-blend.png"), fullPage: true });

    // One influencer's style: the blend is that influencer alone.
    await page.selectOption("#style", { index: 1 });
    const chosen = await page.inputValue("#style");
    await page.evaluate(() => { delete document.body.dataset.generated; });
    await page.click("#generate");
    await page.waitForSelector("body[data-generated=true]", { timeout: 90_000 });
    const single = await page.locator("#blend li").allTextContents();
    assert.equal(single.length, 1);
    assert.ok(single[0].startsWith(`${chosen} 100.0%`), single[0]);
    await page.screenshot({ path: join(artifacts, "demo-influencer.png"), fullPage: true });

    // Switching user clears the previous user's result before the new one loads.
    await page.fill("#user", "ben");
    await page.dispatchEvent("#user", "change");
    await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("ben:"));
    assert.equal(await page.getAttribute("#result", "src"), null, "ana's image still shown for ben");
    assert.equal(await page.locator("#blend li").count(), 0, "ana's blend still shown for ben");
    assert.equal(await page.evaluate(() => document.body.dataset.generated), undefined);

    // A wrong key is saved, but the page says the service refused it.
    await page.fill("#key", "sck_not-a-key");
    await page.click("#save-key");
    await page.waitForSelector("#status.error");
    assert.match(await page.textContent("#status"), /^401 /);
    assert.match(await page.textContent("#key-state"), /rejected it \(401\)/);
    assert.equal(await page.locator("#interests li").count(), 0, "the previous user's interests stayed");
  });
});
