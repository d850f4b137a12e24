// Reports under the Python runtime's names, so that one table of expectations serves both.
exports.handler = async (event, context) => {
  const shown = (value) => (value === undefined ? 'undefined' : value);
  return {
    aws_request_id: context.awsRequestId,
    function_name: context.functionName,
    function_version: context.functionVersion,
    invoked_function_arn: context.invokedFunctionArn,
    memory_limit_in_mb: context.memoryLimitInMB,
    log_group_name: context.logGroupName,
    log_stream_name: context.logStreamName,
    identity: shown(context.identity),
    client_context: shown(context.clientContext),
    callback_waits_for_empty_event_loop: context.callbackWaitsForEmptyEventLoop,
    methods: ['getRemainingTimeInMillis', 'done', 'succeed', 'fail'].map(
      (name) => typeof context[name],
    ),
    remaining: context.getRemainingTimeInMillis(),
    environ: process.env,
    cwd: process.cwd(),
  };
};
