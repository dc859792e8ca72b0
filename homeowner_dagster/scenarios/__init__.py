"""Set-ups that the tests and the benchmarks share: clients, territories and sandbox worlds for
end-to-end runs (the benchmarks import no test module)."""
