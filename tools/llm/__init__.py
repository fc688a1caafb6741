"""Language-model backends (llama.cpp local, OpenAI-compatible, none), sampling policy and context guard."""
