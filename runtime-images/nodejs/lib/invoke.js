'use strict';
// One invocation of the handler, and when it counts as done. Its `outcome` promise resolves once,
// to {ok: true, value} or {ok: false, error}; the main loop (loop.js) then posts it.
//
// What completes an invocation, as on Lambda:
//
//   - a returned promise (an async handler) settling: at once, whatever else is still pending;
//   - a synchronous throw: at once;
//   - callback(err): at once; callback(null, result): at once if
//     context.callbackWaitsForEmptyEventLoop is false, else when the event loop is empty;
//   - context.done / succeed / fail: at once;
//   - none of these by the time the event loop is empty (a handler that returned a plain value or
//     never called back): success with null, as Lambda's implicit callback() does.
//
// "The event loop is empty" is Node's `beforeExit`: nothing of the user's is pending (timers,
// sockets, file I/O) and the runtime itself holds nothing while a handler runs (its idle
// keep-alive socket is unref'd). Work left pending after an invocation completes simply runs on;
// Lambda would freeze it until the next invocation, this runtime does not. A first completion
// wins; a later one is logged and ignored.

const ALREADY_DONE =
  'Invocation has already been reported as done. Cannot call complete more than once per invocation.';

class Invocation {
  constructor() {
    this.finished = false;
    this.waitsForEmptyEventLoop = true;
    this.callbackCalled = false;
    this.legacyCalled = false;
    // What an empty event loop completes the invocation with (Lambda's implicit callback()).
    this.atEmptyLoop = { ok: true, value: null };
    this.outcome = new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  /** Complete with outcome; false (and a log line) if it was complete already. */
  finish(outcome) {
    if (this.finished) {
      console.error(ALREADY_DONE);
      return false;
    }
    this.finished = true;
    this.atEmptyLoop = null;
    this.resolve(outcome);
    return true;
  }

  /**
   * Take the invocation over after an uncaught exception: true if it was not complete yet, and
   * the caller now reports it (the outcome then never resolves; the process is about to end).
   */
  abort() {
    if (this.finished) {
      return false;
    }
    this.finished = true;
    this.atEmptyLoop = null;
    return true;
  }

  /** The `beforeExit` of the process, while this invocation runs. */
  eventLoopEmpty() {
    const outcome = this.atEmptyLoop;
    if (outcome !== null && !this.finished) {
      this.atEmptyLoop = null;
      // An immediate keeps the loop alive until the outcome is posted.
      setImmediate(() => {
        if (!this.finished) {
          this.finish(outcome);
        }
      });
    }
  }

  /** The handler's callback(err, result). */
  callback(err, result) {
    if (this.callbackCalled) {
      return;
    }
    this.callbackCalled = true;
    if (err !== undefined && err !== null) {
      this.finish({ ok: false, error: err });
    } else if (this.waitsForEmptyEventLoop) {
      this.atEmptyLoop = { ok: true, value: result };
    } else {
      this.finish({ ok: true, value: result });
    }
  }

  /** context.done(err, result); succeed and fail are made of it. */
  done(err, result) {
    if (this.legacyCalled) {
      return;
    }
    this.legacyCalled = true;
    if (err !== undefined && err !== null) {
      this.finish({ ok: false, error: err });
    } else {
      this.finish({ ok: true, value: result });
    }
  }

  /** Call handler(event, context, callback); completion follows the rules above. */
  run(handler, event, context) {
    let returned;
    try {
      returned = handler(event, context, (err, result) => this.callback(err, result));
    } catch (err) {
      this.finish({ ok: false, error: err });
      return;
    }
    const thenable =
      (typeof returned === 'object' && returned !== null) || typeof returned === 'function';
    if (thenable && typeof returned.then === 'function') {
      Promise.resolve(returned).then(
        (value) => this.finish({ ok: true, value }),
        (error) => this.finish({ ok: false, error }),
      );
    }
  }
}

module.exports = { Invocation };
