// FakeLLM module
