const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const INSTANCE = crypto.randomUUID(); // module-level code stamps each init

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

exports.handler = async (event) => {
  switch (event.action) {
    case 'sleep':
      await sleep(event.seconds * 1000);
      break;
    case 'meet': {  // arrive, then wait (20 s at most) until every party has arrived
      fs.writeFileSync(path.join(event.dir, event.name), '');
      const deadline = Date.now() + 20000;
      while (fs.readdirSync(event.dir).length < event.parties && Date.now() < deadline) {
        await sleep(10);
      }
      return { pid: process.pid, met: fs.readdirSync(event.dir).length >= event.parties };
    }
    case 'hold': {  // until the gate file exists (20 s at most)
      const deadline = Date.now() + 20000;
      while (!fs.existsSync(event.gate) && Date.now() < deadline) {
        await sleep(10);
      }
      break;
    }
    case 'exit':
      process.exit(event.code);
    case 'kill':
      process.kill(process.pid, 'SIGKILL');
      await sleep(60000);
      break;
    case 'reject':  // a rejection nobody handles, while the handler would go on for 60 s
      Promise.reject(new Error('nobody waits for me'));
      await sleep(60000);
      break;
    case 'throw-later':  // an exception thrown from a timer, while the handler goes on
      setTimeout(() => { throw new TypeError('thrown from a timer'); }, 10);
      await sleep(60000);
      break;
  }
  return { instance: INSTANCE, pid: process.pid };
};
