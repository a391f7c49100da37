"""How a reply is made: the ``Responder`` protocol and the responders that wrap one another.

``base`` (a reply as a stream of speakable clauses), ``llm`` (the LLM on a worker thread),
``fastpath`` (answers that need no LLM), ``deadline`` (the fallback that answers in time whatever
happens), ``clauses`` (tokens into speakable clauses). ``build.responder_chain`` stacks them:
deadline( fast path( LLM ) ).
"""
