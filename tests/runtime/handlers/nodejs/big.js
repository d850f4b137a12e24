exports.handler = async (event) => 'x'.repeat(event.size);
