"""What every stage uses: typed configs, errors, allowed values, strict text files, durable files and manifests,
run guards and the run log, the allocator setting, plots."""
