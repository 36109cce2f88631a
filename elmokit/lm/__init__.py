"""One-direction language models: vocabulary, corpus and token streams, the model and its named sizes, optimizers,
the pretraining loop and its checkpoint, the model directory, perplexity, sampling."""
