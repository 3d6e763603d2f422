// Loaded before the SDK (`node --import ./redirect.mjs`): the SDK's calls to its own
// host go to the Crier under test instead (CRIER_URL), as a hosts-file entry would send
// them. The SDK itself runs unchanged.
const SEED_ORIGIN = "https://app.posteverywhere.ai";
const target = process.env.CRIER_URL;
if (!target) throw new Error("CRIER_URL is not set");
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  if (url.startsWith(SEED_ORIGIN)) {
    return realFetch(target.replace(/\/$/, "") + url.slice(SEED_ORIGIN.length), init);
  }
  return realFetch(input, init);
};
