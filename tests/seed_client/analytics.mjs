// The analytics summary for each period and generated captions, through the seed
// product's SDK. Prints what the SDK returned, as JSON.
import { PostEverywhere } from "@posteverywhere/sdk";

const client = new PostEverywhere({ apiKey: process.env.CRIER_SEED_KEY, maxRetries: 0 });

const summaries = {};
for (const period of ["today", "week", "month", "all"]) {
  summaries[period] = await client.analytics.summary({ period });
}
summaries.default = await client.analytics.summary();
const to = new Date();
const from = new Date(to.getTime() - 2 * 86_400_000);
summaries.custom = await client.analytics.summary({
  period: "custom",
  from: from.toISOString(),
  to: to.toISOString(),
});
const captions = await client.ai.generateCaption({
  topic: "Spring sale: 20% off all plants this weekend",
  platform: "bluesky",
  tone: "witty",
  length: "short",
  include_hashtags: true,
  include_emojis: false,
  count: 2,
});
let refused = null;
try {
  await client.ai.generateCaption({ topic: "", count: 9 });
} catch (err) {
  refused = { name: err.name, status: err.status ?? err.statusCode, code: err.code, message: err.message };
}
console.log(JSON.stringify({ summaries, captions, refused }));
