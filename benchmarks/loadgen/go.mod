module lambdalet/loadgen

go 1.22
