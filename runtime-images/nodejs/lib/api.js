'use strict';
// Client of the Lambda Runtime API (version 2018-06-01) that the agent serves on 127.0.0.1.
//
// `next` long-polls for an invocation (no timeout: it returns when there is work); `respond` and
// `fail` answer it; `initError` reports a failed init. One keep-alive connection: an idle pooled
// socket is unref'd by Node, so it never keeps the event loop alive, which the `beforeExit`
// mechanics of invoke.js rely on.

const http = require('http');

const PREFIX = '/2018-06-01/runtime';

class RuntimeAPIError extends Error {}

class RuntimeAPI {
  constructor(address) {
    const colon = address.lastIndexOf(':');
    if (colon < 1) {
      throw new RuntimeAPIError(`AWS_LAMBDA_RUNTIME_API must be host:port, not '${address}'`);
    }
    this.host = address.slice(0, colon);
    this.port = Number(address.slice(colon + 1));
    this.agent = new http.Agent({ keepAlive: true });
  }

  /** The next invocation, as GET /invocation/next hands it over. */
  async next() {
    const reply = await this.request('GET', `${PREFIX}/invocation/next`);
    if (reply.status !== 200) {
      throw new RuntimeAPIError(`GET /invocation/next answered ${reply.status}: ${reply.body}`);
    }
    const h = reply.headers;
    return {
      requestId: h['lambda-runtime-aws-request-id'],
      deadlineMs: Number(h['lambda-runtime-deadline-ms'] || 0),
      invokedFunctionArn: h['lambda-runtime-invoked-function-arn'] || '',
      traceId: h['lambda-runtime-trace-id'],
      clientContext: h['lambda-runtime-client-context'],
      cognitoIdentity: h['lambda-runtime-cognito-identity'],
      body: reply.body,
    };
  }

  respond(requestId, payload) {
    return this.post(`${PREFIX}/invocation/${requestId}/response`, payload, {});
  }

  fail(requestId, doc) {
    return this.postError(`${PREFIX}/invocation/${requestId}/error`, doc);
  }

  initError(doc) {
    return this.postError(`${PREFIX}/init/error`, doc);
  }

  postError(path, doc) {
    // A header value must be printable ASCII; the body keeps the type as it is.
    const type = String(doc.errorType).replace(/[^\x20-\x7e]/g, (c) => encodeURIComponent(c));
    return this.post(path, Buffer.from(JSON.stringify(doc)), {
      'Lambda-Runtime-Function-Error-Type': type,
    });
  }

  async post(path, body, headers) {
    const reply = await this.request('POST', path, body, headers);
    if (reply.status !== 202) {
      // The invocation has already ended (a payload too large, a timeout): the agent has
      // answered its caller; this runtime goes on to the next one.
      process.stderr.write(
        `lambdalet runtime: POST ${path} answered ${reply.status}: ${reply.body}\n`,
      );
    }
  }

  /** One request; a reused keep-alive socket the agent had closed gets one fresh try. */
  request(method, path, body, headers, retried) {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.host,
          port: this.port,
          method,
          path,
          agent: this.agent,
          headers: { ...headers, 'Content-Length': body ? body.length : 0 },
        },
        (res) => {
          const chunks = [];
          res.on('data', (chunk) => chunks.push(chunk));
          res.on('end', () =>
            resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', (err) => {
        if (req.reusedSocket && err.code === 'ECONNRESET' && !retried) {
          resolve(this.request(method, path, body, headers, true));
        } else {
          reject(err);
        }
      });
      req.end(body);
    });
  }
}

module.exports = { RuntimeAPI, RuntimeAPIError };
