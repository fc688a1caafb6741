"""The researcher's knowledge as deterministic tools: scaling laws, sizing, hyperparameters, rules.

One typed function per capability (pydantic in, pydantic out), every figure a `schema.Figure` with its
provenance ('analytic' with the formula, or 'cited' with ids from `sources.SOURCES`):

- scaling.scale(ScaleRequest) -> ScaleReport            (`qkv scale`)
- sizing.size_architecture(SizeRequest) -> ArchitectureProposal   (`qkv size`)
- hparams.recommend_hparams(HparamRequest) -> HparamPlan          (`qkv hparams`)
- context_rules.context_plan(ContextRequest) -> ContextPlan       (`qkv context`)
- sampling_rules.recommend_sampling(task) / check_sampling(policy)  (`qkv sampling`)
- layer_profile.layer_profile(ProfileRequest) -> LayerProfile     (`qkv profile`)

Nothing here imports torch or transformers: each answer is closed-form and instant."""
