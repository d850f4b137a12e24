'use strict';
// The runtime's main loop: init once, then serve one invocation at a time.
//
// Init loads the handler (module-level code runs here, and only here); a failure is logged,
// posted to /runtime/init/error, and the process exits; the agent starts a new one later. Each
// invocation: decode the JSON event, run the handler (invoke.js decides when it is done), encode
// the result as JSON and post it, or post the error.
//
// An uncaught exception or an unhandled promise rejection fails the invocation in progress (or
// the init) and ends the process, exit status 129 or 128, as on Lambda: the process may be in any
// state. The agent starts a fresh one; the next invocation is a cold start.

const { RuntimeAPI } = require('./api');
const { functionInfo, makeContext } = require('./context');
const { Fault, errorDoc, formatted, describe } = require('./errors');
const { loadHandler } = require('./handler');
const { Invocation } = require('./invoke');
const { patchConsole } = require('./logs');

function decode(body) {
  if (body.length === 0) {
    return {};
  }
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new Fault('Runtime.UnmarshalError', `Unable to unmarshal input: ${err.message}`, err);
  }
}

/** The response body: JSON of the result (undefined is null). */
function encode(value) {
  let text;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (err) {
    console.error('Unable to stringify response body:', err.message);
    throw new Error('Unable to stringify response body');
  }
  return Buffer.from(text === undefined ? 'null' : text, 'utf8');
}

function setTraceId(traceId) {
  if (traceId) {
    process.env._X_AMZN_TRACE_ID = traceId;
  } else {
    delete process.env._X_AMZN_TRACE_ID;
  }
}

async function serve(api, handler, info, next, state) {
  state.requestId = next.requestId;
  setTraceId(next.traceId);
  const invocation = new Invocation();
  state.current = invocation;
  try {
    const event = decode(next.body);
    invocation.run(handler, event, makeContext(info, next, invocation));
  } catch (err) {
    invocation.finish({ ok: false, error: err });
  }
  const outcome = await invocation.outcome;
  if (outcome.ok) {
    let payload = null;
    try {
      payload = encode(outcome.value);
    } catch (err) {
      outcome.ok = false;
      outcome.error = err;
    }
    if (payload !== null) {
      state.posting = api.respond(next.requestId, payload);
    }
  }
  if (!outcome.ok) {
    console.error('Invoke Error', formatted(outcome.error));
    state.posting = api.fail(next.requestId, errorDoc(outcome.error));
  }
  await state.posting;
  state.current = state.posting = null;
}

async function main() {
  const env = process.env;
  // requestId is what log records carry; current is the invocation in progress, if any, and
  // posting its answer on the way to the agent.
  const state = { phase: 'init', requestId: undefined, current: null, posting: null };
  patchConsole(process.stdout, () => state.requestId);
  const api = new RuntimeAPI(env.AWS_LAMBDA_RUNTIME_API || '');
  const info = functionInfo(env);

  const crash = (label, error, status) => {
    console.error(label, formatted(error));
    let report = state.posting || Promise.resolve(); // an answer already on its way goes out
    if (state.phase === 'init') {
      state.phase = 'failed';
      report = api.initError(errorDoc(error));
    } else if (state.current !== null && state.current.abort()) {
      report = api.fail(state.requestId, errorDoc(error));
    }
    const exit = () => process.exit(status);
    report.then(exit, exit);
  };
  process.on('uncaughtException', (err) => crash('Uncaught Exception', err, 129));
  process.on('unhandledRejection', (reason) =>
    crash(
      'Unhandled Promise Rejection',
      new Fault('Runtime.UnhandledPromiseRejection', describe(reason), reason),
      128,
    ),
  );
  process.on('beforeExit', () => {
    if (state.current !== null) {
      state.current.eventLoopEmpty();
    }
  });

  let handler;
  try {
    handler = await loadHandler(env._HANDLER || '', env.LAMBDA_TASK_ROOT || process.cwd());
  } catch (err) {
    if (state.phase !== 'init') {
      return; // a crash during the init has reported it already
    }
    state.phase = 'failed';
    console.error('Uncaught Exception', formatted(err));
    await api.initError(errorDoc(err));
    process.exit(1);
  }
  // A rejection the module's top-level code left unhandled surfaces after a macrotask: let it
  // count as an init error, not as a crash of the first invocation.
  await new Promise((resolve) => setImmediate(resolve));
  if (state.phase !== 'init') {
    return;
  }
  state.phase = 'ready';
  for (;;) {
    const next = await api.next();
    await serve(api, handler, info, next, state);
  }
}

module.exports = {
  main: () =>
    main().catch((err) => {
      process.stderr.write(`lambdalet runtime: ${err && err.stack ? err.stack : err}\n`);
      process.exit(1);
    }),
};
