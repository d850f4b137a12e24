const crypto = require('crypto');

const INSTANCE = crypto.randomUUID(); // module-level code: runs once per init
let calls = 0;
console.log('loaded');

exports.handler = async (event, context) => {
  calls += 1;
  console.log('handling', context.awsRequestId);
  console.info({ calls });
  console.warn('careful');
  console.error('multi\nline');
  console.debug('details');
  return { instance: INSTANCE, calls, pid: process.pid };
};
