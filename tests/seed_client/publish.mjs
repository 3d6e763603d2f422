// A Bluesky post with a first comment and an X thread, created and followed to its end
// with the seed product's SDK. Prints what the SDK returned, as JSON.
import { PostEverywhere } from "@posteverywhere/sdk";

const client = new PostEverywhere({ apiKey: process.env.CRIER_SEED_KEY, maxRetries: 0 });
const { bluesky, x } = JSON.parse(process.env.CRIER_SEED_ACCOUNTS);

const created = await client.posts.create({
  content: "Launch day: the new range is in.",
  account_ids: [bluesky, x],
  platform_content: {
    bluesky: { firstComment: "Shop it at https://shop.example/launch #launch" },
    x: {
      thread: [
        { content: "Three colours, two sizes." },
        { content: "Free returns for thirty days." },
      ],
    },
  },
});

const deadline = Date.now() + 60_000;
let post = await client.posts.get(created.post_id);
const settled = (p) => (p.destinations ?? p.targets ?? []).every((d) => !["scheduled", "queued", "publishing", "pending"].includes(d.status));
while (!settled(post)) {
  if (Date.now() > deadline) throw new Error(`not settled: ${JSON.stringify(post)}`);
  await new Promise((resolve) => setTimeout(resolve, 250));
  post = await client.posts.get(created.post_id);
}
const results = await client.posts.results(created.post_id);
console.log(JSON.stringify({ created, post, results }));
