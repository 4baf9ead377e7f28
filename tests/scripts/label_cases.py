"""Hand-written label cases for the fixture scripts.

LABEL_CASES: (dataset, answer, expected parse_label, expected gold label or "drop").
PREDICTION_SETS: per set, gold and predicted answer templates by intended label, answers
that match no rule, and the fallback label those take.
Expectations here were written by reading PAPER.md's rules, not by running any parser;
gen_metric_fixtures.py checks them against label_rules_ref.py before writing anything.
"""

SAD_GOLD = [
    "This post shows the stress cause related to school.",
    "This post shows the stress cause related to financial problem.",
    "This post shows the stress cause related to family issues.",
    "This post shows the stress cause related to social relationships.",
    "This post shows the stress cause related to work.",
    "This post shows the stress cause related to health issues.",
    "This post shows the stress cause related to emotion turmoil.",
    "This post shows the stress cause related to everyday decision making.",
    "This post shows other stress causes.",
]

LABEL_CASES = [
    # Yes/no sets: "yes" is tested first, then "no"; text after "Reasoning:" never counts.
    ("DR", "Yes, the poster suffers from depression. Reasoning: The post shows hopelessness.", 1, "1"),
    ("DR", "No, the poster does not suffer from depression. Reasoning: ... yes, some sadness ...", 0, "0"),
    ("DR", "The poster does not suffer from depression.", 0, "0"),
    ("DR", "I know it, yes.", 1, "1"),
    ("DR", "YES. reasoning: no", 1, "1"),
    ("DR", "no. REASONING: yes yes yes", 0, "0"),
    ("DR", "Maybe.", 0, "0"),
    ("DR", "", 0, "0"),
    ("DR", "Reasoning: yes, the poster suffers from depression.", 0, "0"),
    ("DR", "The eyes tell it all.", 1, "1"),
    ("dreaddit", "Yes, the poster suffers from stress. Reasoning: deadlines.", 1, "1"),
    ("dreaddit", "No, the poster does not suffer from stress. Reasoning: yes, calm.", 0, "0"),
    ("dreaddit", "Hard to tell.", 0, "0"),
    ("Irf", "Yes, the post shows this risk. Reasoning: no friends.", 1, "1"),
    ("Irf", "No, the post does not show this risk. Reasoning: yes.", 0, "0"),
    ("Irf", "Unclear.", 0, "0"),
    ("MultiWD", "Yes, this wellness dimension exists in the post.", 1, "1"),
    ("MultiWD", "No, this wellness dimension does not exist in the post. Reasoning: yes", 0, "0"),
    ("MultiWD", "It is ambiguous.", 0, "0"),
    ("loneliness", "Yes, the poster is lonely. Reasoning: no friends.", 1, "1"),
    ("loneliness", "No, the poster is not lonely.", 0, "0"),
    ("loneliness", "Unclear.", 0, "0"),
    ("CLP", "Yes, the poster suffers from depression.", 1, "1"),
    ("CLP", "No, the poster does not suffer from depression.", 0, "0"),
    ("CLP", "Maybe.", 0, "0"),
    # SAD: school, financial, family, social, work, health, emotion, decision, other; else 8.
    *[("SAD", g + " Reasoning: school, work and family are all mentioned.", i, str(i)) for i, g in enumerate(SAD_GOLD)],
    ("SAD", "School and work.", 0, "0"),
    ("SAD", "Financial problems in the family.", 1, "1"),
    ("SAD", "Social life at work.", 3, "3"),
    ("SAD", "homework", 4, "4"),
    ("SAD", "Emotional turmoil.", 6, "6"),
    ("SAD", "Decision making. Reasoning: health", 7, "7"),
    ("SAD", "My mother.", 8, "8"),
    ("SAD", "I am unsure.", 8, "8"),
    ("SAD", "Reasoning: school", 8, "8"),
    # t-sid: depression 2, suicide 1, ptsd 3, no mental 0; else 0, and an unmatched gold drops.
    ("t-sid", "This post shows depression and suicide. Reasoning: ptsd", 2, "2"),
    ("t-sid", "This post shows suicide or self-harm tendency.", 1, "1"),
    ("t-sid", "This post shows PTSD.", 3, "3"),
    ("t-sid", "This post shows no mental disorders. Reasoning: no depression.", 0, "0"),
    ("t-sid", "Control group.", 0, "drop"),
    ("t-sid", "Reasoning: depression", 0, "drop"),
    # swmh: no mental 0, suicide 1, depression 2, anxiety 3, bipolar 4; else 0, gold drops.
    ("swmh", "This post shows no mental disorder symptoms, only anxiety about exams.", 0, "0"),
    ("swmh", "This post shows mental disorder symptoms related to suicide.", 1, "1"),
    ("swmh", "This post shows mental disorder symptoms related to depression.", 2, "2"),
    ("swmh", "This post shows mental disorder symptoms related to anxiety. Reasoning: bipolar", 3, "3"),
    ("swmh", "This post shows mental disorder symptoms related to bipolar disorder.", 4, "4"),
    ("swmh", "Bipolar depression.", 2, "2"),
    ("swmh", "Nothing specific.", 0, "drop"),
    # CAMS (MentaLLaMA's label_inference.py, merged): no cause/no reason/none 0, bias 1,
    # job 2, medication 3, relation 4, alienation 5; else 0.
    ("CAMS", "This post shows no causes of depression. Reasoning: no bias, job or relationship issue.", 0, "0"),
    ("CAMS", "This post shows causes of depression related to bias or abuse. Reasoning: job", 1, "1"),
    ("CAMS", "This post shows causes of depression related to jobs and career.", 2, "2"),
    ("CAMS", "This post shows causes of depression related to medication.", 3, "3"),
    ("CAMS", "This post shows causes of depression related to relationship.", 4, "4"),
    ("CAMS", "This post shows causes of depression related to alienation.", 5, "5"),
    ("CAMS", "None.", 0, "0"),
    ("CAMS", "No reason given.", 0, "0"),
    ("CAMS", "Relationship and alienation.", 4, "4"),
    ("CAMS", "It is unclear.", 0, "0"),
    # DEP-SEVERITY generations: minimum (minimal) 0, mild 1, moderate 2, severe 3; else 0.
    ("DEP-SEVERITY", "The depression severity is minimum. Reasoning: not severe.", 0, "0"),
    ("DEP-SEVERITY", "Minimal.", 0, "0"),
    ("DEP-SEVERITY", "Mild to moderate.", 1, "1"),
    ("DEP-SEVERITY", "Moderate. Reasoning: could be mild.", 2, "2"),
    ("DEP-SEVERITY", "SEVERE depression.", 3, "3"),
    ("DEP-SEVERITY", "It is unclear.", 0, "0"),
]

PREDICTION_SETS = {
    "DR": {
        "n": 60,
        "gold": [
            ["No, the poster does not suffer from depression. Reasoning: Although the poster says yes to feeling tired, there are no strong signs.",
             "No, the poster does not suffer from depression. Reasoning: yes, there is sadness, but it is situational."],
            ["Yes, the poster suffers from depression. Reasoning: The poster says no one cares and describes hopelessness."],
        ],
        "predict": [
            ["No, the poster does not suffer from depression. Reasoning: ... yes ...", "no", "NO. REASONING: YES",
             "The poster does not suffer from depression.", "Nothing indicates depression. reasoning: yes"],
            ["Yes, the poster suffers from depression. Reasoning: no signs of joy.", "yes", "YES",
             "Yes - Reasoning: no", "The answer is yes, not no."],
        ],
        "unmatched": ["Unclear.", "Hard to tell.", "Maybe."],
        "fallback": 0,
    },
    "SAD": {
        "n": 90,
        "gold": [[g + " Reasoning: other causes such as work, school or family were considered."] for g in SAD_GOLD],
        "predict": [
            ["This post shows the stress cause related to school. Reasoning: also work and family.", "school"],
            ["This post shows the stress cause related to financial problem. Reasoning: school fees.", "Financial problems."],
            ["This post shows the stress cause related to family issues.", "FAMILY"],
            ["This post shows the stress cause related to social relationships.", "Social life at work."],
            ["This post shows the stress cause related to work.", "homework stress"],
            ["This post shows the stress cause related to health issues. Reasoning: work", "Health."],
            ["This post shows the stress cause related to emotion turmoil.", "emotional turmoil"],
            ["This post shows the stress cause related to everyday decision making.", "Decision making."],
            ["This post shows other stress causes.", "Other. Reasoning: school", "my mother"],
        ],
        "unmatched": ["I am unsure.", "It is unclear."],
        "fallback": 8,
    },
    "t-sid": {
        "n": 70,
        "gold": [
            ["This post shows no mental disorders. Reasoning: no sign of depression or ptsd."],
            ["This post shows suicide or self-harm tendency. Reasoning: it is not only depression."],
            ["This post shows depression. Reasoning: suicide is mentioned but not planned."],
            ["This post shows PTSD. Reasoning: flashbacks, not depression."],
        ],
        "drop_gold": ["This post shows an unclear condition. Reasoning: depression?", "Reasoning: depression only."],
        "predict": [
            ["No mental disorder.", "this post shows no mental disorders"],
            ["Suicide or self-harm.", "Suicide risk. Reasoning: depression"],
            ["Depression and suicide.", "depression"],
            ["PTSD.", "ptsd after the accident"],
        ],
        "unmatched": ["The post is unclear."],
        "fallback": 0,
    },
    "CAMS": {
        "n": 60,
        "gold": [
            ["This post shows no causes of depression. Reasoning: no bias, abuse, job or relationship problems."],
            ["This post shows causes of depression related to bias or abuse. Reasoning: job loss too."],
            ["This post shows causes of depression related to jobs and career. Reasoning: medication is not mentioned."],
            ["This post shows causes of depression related to medication."],
            ["This post shows causes of depression related to relationship. Reasoning: alienation."],
            ["This post shows causes of depression related to alienation."],
        ],
        "predict": [
            ["none", "No causes."],
            ["bias", "Bias or abuse at home."],
            ["job loss", "Jobs and career"],
            ["medication side effects"],
            ["relationship problems", "Relation"],
            ["alienation"],
        ],
        "unmatched": ["It is unclear."],
        "fallback": 0,
    },
    "DEP-SEVERITY": {
        "n": 60,
        "gold": [
            ["The depression severity is minimum. Reasoning: not severe."],
            ["The depression severity is mild. Reasoning: moderate at worst."],
            ["The depression severity is moderate."],
            ["The depression severity is severe. Reasoning: mild days are rare."],
        ],
        "predict": [
            ["Minimal.", "minimum"],
            ["Mild. Reasoning: could be severe", "Mild to moderate."],
            ["Moderate"],
            ["Severe depression."],
        ],
        "unmatched": ["It is unclear."],
        "fallback": 0,
    },
}
