import os

import litellm

from verdict.integrations.litellm import VerdictConfig, VerdictLiteLLM

# VERDICT_ASSIGNMENT_TARGET, VERDICT_INGEST_TARGET, VERDICT_ASSIGN_API_KEY, VERDICT_INGEST_API_KEY
verdict = VerdictLiteLLM(VerdictConfig.from_env())
verdict.callback.install()  # one llm.call event per LiteLLM call

user = os.environ.get("DEMO_USER", "user-42")
response = verdict.completion(  # routed: the user's variant sets model, prompt, parameters
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Where is my order?"}],
    user=user,
    mock_response="It ships tomorrow.",  # no provider needed for this example
)
print(response.model, response.choices[0].message.content)
verdict.feedback.thumbs_up(user, response.id)  # what the user did, tied to the response
verdict.flush()
verdict.close()
litellm.callbacks.clear()
