'use strict';
// The `context` a handler receives, with the fields of Lambda's Node.js runtime.
//
// `functionInfo` is what stays the same for every invocation (read once from the environment the
// agent sets); `makeContext` adds one invocation's request id, ARN, deadline, Cognito identity and
// client context (parsed JSON objects, or undefined when the caller sent none, as on Lambda), and
// the completion controls of invoke.js: `callbackWaitsForEmptyEventLoop` and the legacy
// `done` / `succeed` / `fail`. `memoryLimitInMB` is a string, as on Lambda.

function functionInfo(env) {
  return Object.freeze({
    functionName: env.AWS_LAMBDA_FUNCTION_NAME || '',
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION || '$LATEST',
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || '128',
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME || '',
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME || '',
  });
}

/** A JSON object from a header; undefined when absent (the agent admits only JSON objects). */
function parsed(text) {
  if (!text) {
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * invocation: what GET /invocation/next handed over; controls: the Invocation of invoke.js.
 */
function makeContext(info, invocation, controls) {
  const deadlineMs = invocation.deadlineMs;
  const context = {
    awsRequestId: invocation.requestId,
    invokedFunctionArn: invocation.invokedFunctionArn,
    functionName: info.functionName,
    functionVersion: info.functionVersion,
    memoryLimitInMB: info.memoryLimitInMB,
    logGroupName: info.logGroupName,
    logStreamName: info.logStreamName,
    identity: parsed(invocation.cognitoIdentity),
    clientContext: parsed(invocation.clientContext),
    /** Milliseconds left before the invocation times out (negative once it has, as on Lambda). */
    getRemainingTimeInMillis: () => deadlineMs - Date.now(),
    done: (err, result) => controls.done(err, result),
    succeed: (result) => controls.done(null, result),
    fail: (err) => controls.done(err === undefined || err === null ? 'handled' : err),
  };
  Object.defineProperty(context, 'callbackWaitsForEmptyEventLoop', {
    enumerable: true,
    get: () => controls.waitsForEmptyEventLoop,
    set: (value) => {
      controls.waitsForEmptyEventLoop = Boolean(value);
    },
  });
  return context;
}

module.exports = { functionInfo, makeContext };
