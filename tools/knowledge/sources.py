"""The registry of cited sources. Every `cited` figure of the knowledge tools names ids from here,
so a report can print a bibliography and a test can check that no figure cites a ghost."""

from __future__ import annotations

from pydantic import BaseModel


class Source(BaseModel):
    """A paper, model card, config file or released script."""

    id: str
    title: str
    authors: str
    year: int
    url: str
    venue: str | None = None


def _s(id: str, title: str, authors: str, year: int, url: str, venue: str | None = None) -> Source:
    return Source(id=id, title=title, authors=authors, year=year, url=url, venue=venue)


_ALL = [
    # Scaling laws and compute
    _s("hoffmann2022", "Training Compute-Optimal Large Language Models", "Hoffmann, Borgeaud, Mensch, et al.",
       2022, "https://arxiv.org/abs/2203.15556", "NeurIPS 2022"),
    _s("besiroglu2024", "Chinchilla Scaling: A replication attempt", "Besiroglu, Erdil, Barnett, You", 2024,
       "https://arxiv.org/abs/2404.10102", "Epoch AI"),
    _s("kaplan2020", "Scaling Laws for Neural Language Models", "Kaplan, McCandlish, Henighan, et al.", 2020,
       "https://arxiv.org/abs/2001.08361"),
    _s("sardana2024", "Beyond Chinchilla-Optimal: Accounting for Inference in Language Model Scaling Laws",
       "Sardana, Portes, Doubov, Frankle", 2024, "https://arxiv.org/abs/2401.00448", "ICML 2024"),
    _s("chowdhery2022", "PaLM: Scaling Language Modeling with Pathways", "Chowdhery, Narang, Devlin, et al.", 2022,
       "https://arxiv.org/abs/2204.02311", "JMLR 2023 (defines MFU; 46.2% for PaLM 540B)"),
    _s("dubey2024", "The Llama 3 Herd of Models", "Llama Team, AI @ Meta", 2024, "https://arxiv.org/abs/2407.21783"),
    _s("qkv-gpus", "qkv GPU catalog (tools/catalog/gpus.json), dense BF16 tensor TFLOP/s", "qkv", 2026,
       "tools/catalog/gpus.json"),
    _s("qkv-models", "qkv model catalog (tools/catalog/models/*.json), published HF config.json files", "qkv", 2026,
       "tools/catalog/models/"),
    # Architectures
    _s("brown2020", "Language Models are Few-Shot Learners (GPT-3), Table 2.1", "Brown, Mann, Ryder, et al.", 2020,
       "https://arxiv.org/abs/2005.14165", "NeurIPS 2020"),
    _s("touvron2023a", "LLaMA: Open and Efficient Foundation Language Models", "Touvron, Lavril, Izacard, et al.",
       2023, "https://arxiv.org/abs/2302.13971"),
    _s("touvron2023b", "Llama 2: Open Foundation and Fine-Tuned Chat Models", "Touvron, Martin, Stone, et al.", 2023,
       "https://arxiv.org/abs/2307.09288"),
    _s("ainslie2023", "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints",
       "Ainslie, Lee-Thorp, de Jong, et al.", 2023, "https://arxiv.org/abs/2305.13245", "EMNLP 2023"),
    _s("shazeer2019", "Fast Transformer Decoding: One Write-Head is All You Need", "Shazeer", 2019,
       "https://arxiv.org/abs/1911.02150"),
    _s("shazeer2020", "GLU Variants Improve Transformer", "Shazeer", 2020, "https://arxiv.org/abs/2002.05202"),
    _s("zhang2019", "Root Mean Square Layer Normalization", "Zhang, Sennrich", 2019,
       "https://arxiv.org/abs/1910.07467", "NeurIPS 2019"),
    _s("ba2016", "Layer Normalization", "Ba, Kiros, Hinton", 2016, "https://arxiv.org/abs/1607.06450"),
    _s("su2021", "RoFormer: Enhanced Transformer with Rotary Position Embedding", "Su, Lu, Pan, et al.", 2021,
       "https://arxiv.org/abs/2104.09864"),
    _s("press2022", "Train Short, Test Long: Attention with Linear Biases Enables Input Length Extrapolation",
       "Press, Smith, Lewis", 2022, "https://arxiv.org/abs/2108.12409", "ICLR 2022"),
    _s("jiang2023", "Mistral 7B", "Jiang, Sablayrolles, Mensch, et al.", 2023, "https://arxiv.org/abs/2310.06825"),
    _s("gemma2024", "Gemma 2: Improving Open Language Models at a Practical Size", "Gemma Team", 2024,
       "https://arxiv.org/abs/2408.00118"),
    _s("gemma2025", "Gemma 3 Technical Report", "Gemma Team", 2025, "https://arxiv.org/abs/2503.19786"),
    _s("jiang2024", "Mixtral of Experts", "Jiang, Sablayrolles, Roux, et al.", 2024,
       "https://arxiv.org/abs/2401.04088"),
    _s("vaswani2017", "Attention Is All You Need", "Vaswani, Shazeer, Parmar, et al.", 2017,
       "https://arxiv.org/abs/1706.03762", "NeurIPS 2017"),
    # Hyperparameters
    _s("dettmers2023", "QLoRA: Efficient Finetuning of Quantized LLMs (paper + artidoro/qlora scripts)",
       "Dettmers, Pagnoni, Holtzman, Zettlemoyer", 2023, "https://arxiv.org/abs/2305.14314; "
       "https://github.com/artidoro/qlora/tree/main/scripts (finetune_guanaco_{7b,13b,33b,65b}.sh, qlora.py)",
       "NeurIPS 2023"),
    _s("hu2021", "LoRA: Low-Rank Adaptation of Large Language Models", "Hu, Shen, Wallis, et al.", 2021,
       "https://arxiv.org/abs/2106.09685", "ICLR 2022"),
    _s("peft", "PEFT LoraConfig defaults (src/peft/tuners/lora/config.py) and "
       "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING", "Hugging Face", 2024,
       "https://github.com/huggingface/peft/blob/main/src/peft/tuners/lora/config.py"),
    _s("kalajdzievski2023", "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA (rsLoRA)",
       "Kalajdzievski", 2023, "https://arxiv.org/abs/2312.03732"),
    _s("taori2023", "Stanford Alpaca: An Instruction-following LLaMA model (README fine-tuning hyperparameters)",
       "Taori, Gulrajani, Zhang, et al.", 2023, "https://github.com/tatsu-lab/stanford_alpaca"),
    _s("ivison2023", "Camels in a Changing Climate: Enhancing LM Adaptation with Tulu 2",
       "Ivison, Wang, Pyatkin, et al.", 2023, "https://arxiv.org/abs/2311.10702"),
    _s("devlin2019", "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
       "Devlin, Chang, Lee, Toutanova", 2019, "https://arxiv.org/abs/1810.04805", "NAACL 2019"),
    _s("loshchilov2019", "Decoupled Weight Decay Regularization (AdamW)", "Loshchilov, Hutter", 2019,
       "https://arxiv.org/abs/1711.05101", "ICLR 2019"),
    # Context
    _s("chen2023", "Extending Context Window of Large Language Models via Positional Interpolation",
       "Chen, Wong, Chen, Tian", 2023, "https://arxiv.org/abs/2306.15595"),
    _s("peng2023", "YaRN: Efficient Context Window Extension of Large Language Models",
       "Peng, Quesnelle, Fan, Shippole", 2023, "https://arxiv.org/abs/2309.00071", "ICLR 2024"),
    _s("hf-rope", "transformers modeling_rope_utils.py (ROPE_INIT_FUNCTIONS: default, linear, dynamic, yarn, "
       "longrope, llama3)", "Hugging Face", 2024,
       "https://github.com/huggingface/transformers/blob/main/src/transformers/modeling_rope_utils.py"),
    _s("llama31-config", "meta-llama/Llama-3.1-8B config.json (rope_scaling rope_type llama3)", "Meta", 2024,
       "https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json"),
    _s("liu2023", "Lost in the Middle: How Language Models Use Long Contexts", "Liu, Lin, Hewitt, et al.", 2023,
       "https://arxiv.org/abs/2307.03172", "TACL 2024"),
    _s("xiao2023", "Efficient Streaming Language Models with Attention Sinks (StreamingLLM)",
       "Xiao, Tian, Chen, Han, Lewis", 2023, "https://arxiv.org/abs/2309.17453", "ICLR 2024"),
    _s("beltagy2020", "Longformer: The Long-Document Transformer", "Beltagy, Peters, Cohan", 2020,
       "https://arxiv.org/abs/2004.05150"),
    _s("lewis2020rag", "Retrieval-Augmented Generation for Knowledge-Intensive NLP Tasks", "Lewis, Perez, et al.",
       2020, "https://arxiv.org/abs/2005.11401", "NeurIPS 2020"),
    _s("pope2022", "Efficiently Scaling Transformer Inference", "Pope, Douglas, Chowdhery, et al.", 2022,
       "https://arxiv.org/abs/2211.05102", "MLSys 2023"),
    # Sampling
    _s("holtzman2020", "The Curious Case of Neural Text Degeneration (nucleus sampling)",
       "Holtzman, Buys, Du, Forbes, Choi", 2020, "https://arxiv.org/abs/1904.09751", "ICLR 2020"),
    _s("fan2018", "Hierarchical Neural Story Generation (top-k sampling)", "Fan, Lewis, Dauphin", 2018,
       "https://arxiv.org/abs/1805.04833", "ACL 2018"),
    _s("keskar2019", "CTRL: A Conditional Transformer Language Model for Controllable Generation "
       "(repetition penalty)", "Keskar, McCann, Varshney, Xiong, Socher", 2019, "https://arxiv.org/abs/1909.05858"),
    _s("chen2021", "Evaluating Large Language Models Trained on Code (Codex, HumanEval)",
       "Chen, Tworek, Jun, et al.", 2021, "https://arxiv.org/abs/2107.03374"),
    _s("lewis2020bart", "BART (facebook/bart-large-cnn generation config: 4 beams, length_penalty 2.0, "
       "max_length 142, min_length 56, no_repeat_ngram_size 3)", "Lewis, Liu, Goyal, et al.", 2020,
       "https://huggingface.co/facebook/bart-large-cnn/blob/main/config.json", "ACL 2020"),
    _s("llama2-chat-genconfig", "meta-llama/Llama-2-7b-chat-hf generation_config.json (temperature 0.6, top_p 0.9)",
       "Meta", 2023, "https://huggingface.co/meta-llama/Llama-2-7b-chat-hf/blob/main/generation_config.json"),
    _s("lm-eval", "EleutherAI lm-evaluation-harness (generate_until tasks decode greedily by default)",
       "Gao, Tow, Biderman, et al.", 2023, "https://github.com/EleutherAI/lm-evaluation-harness"),
    _s("hf-generate", "transformers GenerationConfig defaults (top_k 50, top_p 1.0, temperature 1.0)",
       "Hugging Face", 2024,
       "https://github.com/huggingface/transformers/blob/main/src/transformers/generation/configuration_utils.py"),
    # Model choice, budgets, task recipes and precision (issue 22)
    _s("hsieh2024", "RULER: What's the Real Context Size of Your Long-Context Language Models?",
       "Hsieh, Sun, Kriman, et al.", 2024, "https://arxiv.org/abs/2404.06654", "COLM 2024"),
    _s("muennighoff2023", "Scaling Data-Constrained Language Models", "Muennighoff, Rush, Barak, et al.", 2023,
       "https://arxiv.org/abs/2305.16264", "NeurIPS 2023 (up to ~4 epochs of repeated data ≈ as good as unique)"),
    _s("zhang2024tinyllama", "TinyLlama: An Open-Source Small Language Model (1.1B on 3T tokens)",
       "Zhang, Zeng, Wang, Lu", 2024, "https://arxiv.org/abs/2401.02385"),
    _s("bavarian2022", "Efficient Training of Language Models to Fill in the Middle", "Bavarian, Jun, Tezak, et al.",
       2022, "https://arxiv.org/abs/2207.14255"),
    _s("austin2021", "Program Synthesis with Large Language Models (MBPP)", "Austin, Odena, Nye, et al.", 2021,
       "https://arxiv.org/abs/2108.07732"),
    _s("cassano2023", "MultiPL-E: A Scalable and Polyglot Approach to Benchmarking Neural Code Generation",
       "Cassano, Gouwar, Nguyen, et al.", 2023, "https://arxiv.org/abs/2208.08227", "IEEE TSE"),
    _s("li2023starcoder", "StarCoder: may the source be with you! (licence filtering, PII redaction, decontamination)",
       "Li, Allal, Zi, et al.", 2023, "https://arxiv.org/abs/2305.06161", "TMLR"),
    _s("dixon2018", "Measuring and Mitigating Unintended Bias in Text Classification", "Dixon, Li, Sorensen, Thain, "
       "Vasserman", 2018, "https://doi.org/10.1145/3278721.3278729", "AIES 2018"),
    _s("borkan2019", "Nuanced Metrics for Measuring Unintended Bias with Real Data for Text Classification "
       "(subgroup AUC, BPSN, BNSP)", "Borkan, Dixon, Sorensen, Thain, Vasserman", 2019,
       "https://arxiv.org/abs/1903.04561", "WWW 2019 companion"),
    _s("sap2019", "The Risk of Racial Bias in Hate Speech Detection", "Sap, Card, Gabriel, Choi, Smith", 2019,
       "https://aclanthology.org/P19-1163/", "ACL 2019"),
    _s("saito2015", "The Precision-Recall Plot Is More Informative than the ROC Plot When Evaluating Binary "
       "Classifiers on Imbalanced Datasets", "Saito, Rehmsmeier", 2015,
       "https://doi.org/10.1371/journal.pone.0118432", "PLOS ONE"),
    _s("maynez2020", "On Faithfulness and Factuality in Abstractive Summarization", "Maynez, Narayan, Bohnet, "
       "McDonald", 2020, "https://arxiv.org/abs/2005.00661", "ACL 2020"),
    _s("lin2004", "ROUGE: A Package for Automatic Evaluation of Summaries", "Lin", 2004,
       "https://aclanthology.org/W04-1013/"),
    _s("see2017", "Get To The Point: Summarization with Pointer-Generator Networks (Lead-3 baseline)",
       "See, Liu, Manning", 2017, "https://arxiv.org/abs/1704.04368", "ACL 2017"),
    _s("rajpurkar2016", "SQuAD: 100,000+ Questions for Machine Comprehension of Text (EM and F1)",
       "Rajpurkar, Zhang, Lopyrev, Liang", 2016, "https://arxiv.org/abs/1606.05250", "EMNLP 2016"),
    _s("tjong2003", "Introduction to the CoNLL-2003 Shared Task: Language-Independent Named Entity Recognition "
       "(entity-level F1)", "Tjong Kim Sang, De Meulder", 2003, "https://aclanthology.org/W03-0419/"),
    _s("post2018", "A Call for Clarity in Reporting BLEU Scores (sacreBLEU)", "Post", 2018,
       "https://arxiv.org/abs/1804.08771", "WMT 2018"),
    _s("popovic2015", "chrF: character n-gram F-score for automatic MT evaluation", "Popović", 2015,
       "https://aclanthology.org/W15-3049/", "WMT 2015"),
    _s("rei2020", "COMET: A Neural Framework for MT Evaluation", "Rei, Stewart, Farinha, Lavie", 2020,
       "https://arxiv.org/abs/2009.09025", "EMNLP 2020"),
    _s("zheng2023", "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", "Zheng, Chiang, Sheng, et al.", 2023,
       "https://arxiv.org/abs/2306.05685", "NeurIPS 2023"),
    _s("rust2021", "How Good is Your Tokenizer? On the Monolingual Performance of Multilingual Language Models "
       "(fertility)", "Rust, Pfeiffer, Vulić, Ruder, Gurevych", 2021, "https://arxiv.org/abs/2012.15613", "ACL 2021"),
    _s("petrov2023", "Language Model Tokenizers Introduce Unfairness Between Languages", "Petrov, La Malfa, Torr, "
       "Bibi", 2023, "https://arxiv.org/abs/2305.15425", "NeurIPS 2023"),
    _s("lukas2023", "Analyzing Leakage of Personally Identifiable Information in Language Models",
       "Lukas, Salem, Sim, et al.", 2023, "https://arxiv.org/abs/2302.00539", "IEEE S&P 2023"),
    _s("micikevicius2018", "Mixed Precision Training (fp16 with loss scaling, fp32 master weights)",
       "Micikevicius, Narang, Alben, et al.", 2018, "https://arxiv.org/abs/1710.03740", "ICLR 2018"),
    _s("zhou2023lima", "LIMA: Less Is More for Alignment (1,000 curated examples)", "Zhou, Liu, Xu, et al.", 2023,
       "https://arxiv.org/abs/2305.11206", "NeurIPS 2023"),
    _s("mosbach2021", "On the Stability of Fine-tuning BERT (small data: more steps, bias correction, restarts)",
       "Mosbach, Andriushchenko, Klakow", 2021, "https://arxiv.org/abs/2006.04884", "ICLR 2021"),
]

SOURCES: dict[str, Source] = {s.id: s for s in _ALL}


def bibliography(ids: list[str] | set[str]) -> list[Source]:
    """The sources behind a set of ids, in registry order (for a report's reference list)."""
    wanted = set(ids)
    return [s for s in _ALL if s.id in wanted]
