// The hello-world Lambda handler for Node.js: runs unchanged on AWS Lambda and on Lambdalet.
exports.handler = async (event, context) => {
  const name = (event.queryStringParameters || {}).name || "world";
  return {
    statusCode: 200,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ message: `hello, ${name}`, requestId: context.awsRequestId }),
  };
};
