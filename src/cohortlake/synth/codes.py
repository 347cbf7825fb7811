"""Code lists of the synthetic data: what persons have and their claims and fills carry.

Conditions (ICD-9-CM), index and second cancers (ICD-O-3 topography and histology, the
ICD-9-CM code on claims), HCC-directed therapies and the settings that bill them,
services (HCPCS, revenue centers, ICD-9 procedures), drugs (NDC, generic and brand
names) and Part D codes, with the weights the model draws them by. Shared by the person
model (``synth.model``) and the claims and fills (``synth.events``).
"""

from __future__ import annotations

from cohortlake.vocabulary import Setting


# Liver conditions use exactly the code lists of docs/reference-study.md's covariate table;
# NCI comorbidities one or two typical codes each. (name, kind, codes, P(other cancer),
# P(HCC), added probability when the person has cirrhosis).
CONDITIONS: list[tuple[str, str, list[str], float, float, float]] = [
    ("cirrhosis", "liver", ["5712", "5715", "5716"], 0.015, 0.55, 0.0),
    ("hepatitis_b", "liver", ["07020", "07021", "07022", "07023", "07030", "07031", "07032", "07033", "V0261"],
     0.004, 0.10, 0.0),
    ("hepatitis_c", "liver", ["07041", "07044", "07051", "07054", "07070", "07071", "V0262"], 0.01, 0.25, 0.0),
    ("alcoholic_liver_disease", "liver", ["5710", "5711", "5712", "5713"], 0.01, 0.18, 0.0),
    ("ascites", "liver", ["78959", "78951"], 0.01, 0.08, 0.22),
    ("hepatic_encephalopathy", "liver", ["5722"], 0.002, 0.03, 0.10),
    ("esophageal_varices", "liver", ["4560", "4561", "45620", "45621"], 0.002, 0.03, 0.18),
    ("jaundice", "liver", ["7824"], 0.01, 0.05, 0.08),
    ("diabetes", "nci", ["25000"], 0.26, 0.40, 0.0),
    ("congestive_heart_failure", "nci", ["4280"], 0.12, 0.12, 0.0),
    ("copd", "nci", ["496"], 0.14, 0.12, 0.0),
    ("renal_disease", "nci", ["5859"], 0.08, 0.10, 0.0),
    ("peripheral_vascular_disease", "nci", ["4439"], 0.07, 0.06, 0.0),
    ("cerebrovascular_disease", "nci", ["436"], 0.07, 0.06, 0.0),
    ("myocardial_infarction", "nci", ["41090"], 0.04, 0.04, 0.0),
    ("dementia", "nci", ["2900"], 0.04, 0.03, 0.0),
    ("paralysis", "nci", ["3441"], 0.01, 0.01, 0.0),
    ("rheumatologic_disease", "nci", ["7140"], 0.02, 0.02, 0.0),
    ("peptic_ulcer", "nci", ["53190"], 0.03, 0.04, 0.0),
]
CONDITION_NAMES = [c[0] for c in CONDITIONS]
NCI_CONDITIONS = [c[0] for c in CONDITIONS if c[1] == "nci"]
BACKGROUND_DX = ["4019", "2724", "V700", "78650", "7295"]

# index cancer: ICD-O-3 topography, histology weights, ICD-9-CM code on claims
SITES = {
    "lung": (["C340", "C341", "C342", "C343", "C348", "C349"],
             [("8140", 0.4), ("8070", 0.25), ("8041", 0.15), ("8046", 0.15), ("8012", 0.05)], "1629"),
    "colon": (["C180", "C182", "C183", "C184", "C185", "C186", "C187", "C189"],
              [("8140", 0.8), ("8480", 0.12), ("8210", 0.04), ("8263", 0.04)], "1539"),
    "prostate": (["C619"], [("8140", 0.95), ("8550", 0.05)], "185"),
    "breast": (["C500", "C501", "C502", "C503", "C504", "C505", "C508", "C509"],
               [("8500", 0.75), ("8520", 0.15), ("8522", 0.10)], "1749"),
}
HCC_SITE = "C220"
HCC_DX = "1550"
# ~5% 8160/8180: liver cancers that are not HCC by the study's histology rule
HCC_HISTOLOGY = [("8170", 0.80), ("8171", 0.04), ("8172", 0.02), ("8173", 0.03), ("8174", 0.03),
                 ("8175", 0.03), ("8160", 0.03), ("8180", 0.02)]
HCC_STAGES = [("1", 0.30), ("2", 0.30), ("4", 0.28), ("9", 0.12)]
OTHER_STAGES = [("0", 0.05), ("1", 0.38), ("2", 0.28), ("4", 0.18), ("8", 0.02), ("9", 0.09)]

# HCC-directed therapy: (setting, kind, code) routes per therapy, codes from the study sets
CARRIER, INPATIENT, OUTPATIENT = Setting.carrier, Setting.inpatient, Setting.outpatient
THERAPY_ROUTES = {
    "liver_resection": [(CARRIER, "hcpcs", "47120"), (INPATIENT, "icd_proc", "5022")],
    "liver_transplant": [(CARRIER, "hcpcs", "47135"), (INPATIENT, "icd_proc", "5051")],
    "ablation": [(CARRIER, "hcpcs", "47380"), (OUTPATIENT, "icd_proc", "5023"), (OUTPATIENT, "hcpcs", "47380")],
    "tace_embolization": [(CARRIER, "hcpcs", "37243"), (OUTPATIENT, "hcpcs", "S2095"),
                          (OUTPATIENT, "hcpcs", "37243")],
    "radiation": [(OUTPATIENT, "hcpcs", "77412"), (OUTPATIENT, "icd_proc", "9223"),
                  (OUTPATIENT, "dx", "V580"), (CARRIER, "hcpcs", "77412")],
}
THERAPY_BY_STAGE = {  # P(any therapy), then which therapy
    "1": (0.45, [("liver_resection", 0.30), ("liver_transplant", 0.05), ("ablation", 0.30),
                 ("tace_embolization", 0.25), ("radiation", 0.10)]),
    "advanced": (0.10, [("liver_resection", 0.10), ("ablation", 0.15), ("tace_embolization", 0.50),
                        ("radiation", 0.25)]),
    "9": (0.08, [("liver_resection", 0.15), ("ablation", 0.25), ("tace_embolization", 0.40), ("radiation", 0.20)]),
}
# therapy day relative to diagnosis: the study window is [-30, +60]; put mass on its edges
# (day or None for "anywhere inside" / "late", weight)
THERAPY_DAYS = [(-31, 0.08), (61, 0.08), (-30, 0.04), (60, 0.04), ("inside", 0.66), ("late", 0.10)]

CARRIER_EM = [("99213", 0.35), ("99214", 0.30), ("99212", 0.10), ("99215", 0.10), ("99204", 0.08), ("99203", 0.07)]
CARRIER_OTHER = ["80053", "85025", "36415", "71020", "93000", "76700", "74177"]
OUTPATIENT_LINES = [("0300", "80053"), ("0300", "85025"), ("0320", "71020"), ("0350", "74177"),
                    ("0510", "99213"), ("0450", "99284"), ("0250", None), ("0402", "76700")]
INPATIENT_PROCS = ["3893", "9904", "8741", "4516", "5491", "8872", "4443"]  # none in a therapy set
OUTPATIENT_PROCS = ["8741", "4516", "8872", "5491"]

ICI = [("J9299", 14, "240", 0.40), ("J9271", 21, "200", 0.35), ("J9022", 21, "120", 0.15),
       ("J9173", 28, "150", 0.10)]  # HCPCS, interval days, units, weight


SORAFENIB_NDC = "50419048858"
SORAFENIB_BRANDED = (SORAFENIB_NDC, "SORAFENIB TOSYLATE", "NEXAVAR")
# an NDC outside the study's NDC set, found only by the case-insensitive generic-name rule
SORAFENIB_OTHER = ("50419048801", "Sorafenib Tosylate", "Nexavar")
TKI = [("regorafenib", "50419017103", "REGORAFENIB", "STIVARGA", 0.5),
       ("lenvatinib", "62856071030", "LENVATINIB MESYLATE", "LENVIMA", 0.3),
       ("cabozantinib", "42388002326", "CABOZANTINIB S-MALATE", "CABOMETYX", 0.2)]
# background drugs: key, NDC, generic name, brand name, units per day
DRUGS = [
    ("lisinopril", "68180051301", "LISINOPRIL", "LISINOPRIL", 1),
    ("metformin", "00093104801", "METFORMIN HCL", "METFORMIN HCL", 2),
    ("atorvastatin", "00071015523", "ATORVASTATIN CALCIUM", "LIPITOR", 1),
    ("furosemide", "00054429731", "FUROSEMIDE", "FUROSEMIDE", 1),
    ("spironolactone", "00378214601", "SPIRONOLACTONE", "SPIRONOLACTONE", 1),
    ("lactulose", "00121057716", "LACTULOSE", "LACTULOSE", 30),
]
PART_D_CONTRACTS = ["H1234", "S5678", "R0001", "E0002", "H0543", "S4802", "S5810", "H3312"]
NO_PART_D_VALUES = [("0", 0.45), ("N", 0.35), (None, 0.15), ("X", 0.03), ("*", 0.02)]
