// Drives llmrun serve with the official openai client and prints what it
// got as one JSON object; the Go test (internal/cli/llmruncmd
// TestServeOpenAIClient) checks it against llmrun generate.
//
// node client.mjs BASE_URL API_KEY MODEL PROMPT [CHAT_BASE_URL CHAT_MODEL]
import OpenAI from "openai";

const [baseURL, apiKey, model, prompt, chatURL, chatModel] = process.argv.slice(2);
const client = new OpenAI({ baseURL: baseURL + "/v1", apiKey, maxRetries: 0 });
const out = {};

async function streamText(stream) {
  let text = "", finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    text += c.text ?? c.delta?.content ?? "";
    if (c.finish_reason) finish = c.finish_reason;
    chunks++;
  }
  return { text, finish_reason: finish, usage, chunks };
}

async function status(promise) {
  try {
    await promise;
    return { status: 200 };
  } catch (e) {
    return { status: e.status ?? null, name: e.constructor.name, message: e.message, type: e.error?.type ?? e.type ?? null };
  }
}

const req = { model, prompt, max_tokens: 24, temperature: 0 };

out.models = (await client.models.list()).data.map((m) => m.id);

const c = await client.completions.create(req);
out.completion = { text: c.choices[0].text, finish_reason: c.choices[0].finish_reason, usage: c.usage };

out.stream = await streamText(await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } }));

// Concurrent: 8 requests with different seeds, each must be what it is alone.
out.concurrent = await Promise.all(
  [1, 2, 3, 4, 5, 6, 7, 8].map(async (seed) => {
    const r = await client.completions.create({ ...req, temperature: 0.8, seed, max_tokens: 20 });
    return { seed, text: r.choices[0].text, finish_reason: r.choices[0].finish_reason };
  }),
);

// Abort mid-stream: the Go test then checks that the slot is free.
{
  const ac = new AbortController();
  const stream = await client.completions.create(
    { ...req, max_tokens: 400, ignore_eos: true, stream: true },
    { signal: ac.signal },
  );
  let got = 0;
  try {
    for await (const chunk of stream) {
      if (++got === 3) ac.abort();
    }
  } catch (e) {
    // The client ends the iteration quietly on an abort, or throws.
  }
  // 400 tokens would have come without the abort.
  out.abort = { aborted: ac.signal.aborted && got < 400, chunks: got };
}

out.errors = {
  unknown_model: await status(client.completions.create({ ...req, model: "no-such-model" })),
  bad_temperature: await status(client.completions.create({ ...req, temperature: -2 })),
  bad_max_tokens: await status(client.completions.create({ ...req, max_tokens: 100000 })),
  wrong_key: await status(new OpenAI({ baseURL: baseURL + "/v1", apiKey: "wrong", maxRetries: 0 }).models.list()),
};

if (chatURL) {
  const chat = new OpenAI({ baseURL: chatURL + "/v1", apiKey: "unused", maxRetries: 0 });
  const creq = { model: chatModel, messages: [{ role: "user", content: "What is 2+2?" }], max_tokens: 16, temperature: 0 };
  const r = await chat.chat.completions.create(creq);
  out.chat = { text: r.choices[0].message.content, role: r.choices[0].message.role, finish_reason: r.choices[0].finish_reason, usage: r.usage };
  out.chat_stream = await streamText(await chat.chat.completions.create({ ...creq, stream: true, stream_options: { include_usage: true } }));
  out.chat_errors = {
    no_template: await status(client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] })),
  };
}

process.stdout.write(JSON.stringify(out) + "\n");
