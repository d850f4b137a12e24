module lambdalet.dev/agent

go 1.22
