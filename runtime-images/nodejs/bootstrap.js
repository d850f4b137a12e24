'use strict';
// Entry point of Lambdalet's Node.js runtime: the agent starts `node bootstrap.js` in a function
// pod; it loads the handler named by _HANDLER and serves invocations from the Lambda Runtime API
// at AWS_LAMBDA_RUNTIME_API until the agent stops it. See README.md.

require('./lib/loop').main();
