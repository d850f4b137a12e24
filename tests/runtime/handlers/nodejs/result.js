exports.handler = async (event) => ({ got: event.n });
