module lapor-sla/bench/loadgen

go 1.21
