"""Answers: the four modes as LangChain chains, prompts, the chat models (local engine, OpenAI-compatible server), compare, the answer checks, saved chats."""
