class OrderRejected extends Error { name = 'OrderRejected'; }
const reject = (why) => { throw new OrderRejected(why); };
exports.handler = async () => reject('out of stock: ünïcode');
