// vqa.ts: VQA accuracy as the official VQA evaluation computes it (GT-Vision-Lab/VQA,
// PythonEvaluationTools/vqaEvaluation/vqaEval.py), used for the Emu paper's VQAv2 / OKVQA /
// VizWiz columns and, with one ground-truth answer per question, for video QA (MSVD-QA,
// MSRVTT-QA), plus the post-processing Emu applies to a generated answer before scoring.
//
// Normalisation (normalizeVqaAnswer), in the official order:
// 1. newlines and tabs become spaces, the ends are trimmed;
// 2. punctuation: each of ; / [ ] " { } ( ) = + \ _ - > < @ ` , ? ! is deleted if the text has it
//    next to a space (or has a comma between digits, "1,000"), else replaced by a space; then
//    every '.' not followed by a digit is deleted (the official regex `(?!<=\d)(\.)(?!\d)` means
//    exactly that: its first group is a look-ahead, not the look-behind it looks like);
// 3. lower-case, split on whitespace, number words "none".."ten" become digits ("none" -> "0"),
//    the articles a / an / the are dropped, and missing apostrophes are restored ("dont" -> "don't").
//
// Accuracy of one answer against the human answers: for each of the n answers, leave it out and
// count how many of the other n-1 equal the prediction; that subset scores min(count / 3, 1);
// the accuracy is the mean over the n subsets (VQAv2 has n = 10). With a single ground-truth
// answer, leave-one-out would always give 0, so it is an exact match after normalisation.
// Unlike the official script, which normalises the human answers only when they disagree, both
// sides are always normalised here: our ground truth is not pre-cleaned by annotators.
import { ValueError } from '../../tensor/errors.ts';

const PUNCTUATION = [';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'];
const NUMBER_WORDS: Record<string, string> = {
  none: '0', zero: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9', ten: '10',
};
const ARTICLES = new Set(['a', 'an', 'the']);
// The official table, less its three capitalised keys ("Id've", "Im", "Ive"), which can never
// match the lower-cased words they are looked up with.
const CONTRACTIONS: Record<string, string> = {
  aint: "ain't", arent: "aren't", cant: "can't", couldve: "could've", couldnt: "couldn't", "couldn'tve": "couldn't've",
  "couldnt've": "couldn't've", didnt: "didn't", doesnt: "doesn't", dont: "don't", hadnt: "hadn't", "hadnt've": "hadn't've",
  "hadn'tve": "hadn't've", hasnt: "hasn't", havent: "haven't", hed: "he'd", "hed've": "he'd've", "he'dve": "he'd've",
  hes: "he's", howd: "how'd", howll: "how'll", hows: "how's", "I'dve": "I'd've", isnt: "isn't", itd: "it'd",
  "itd've": "it'd've", "it'dve": "it'd've", itll: "it'll", "let's": "let's", maam: "ma'am", mightnt: "mightn't",
  "mightnt've": "mightn't've", "mightn'tve": "mightn't've", mightve: "might've", mustnt: "mustn't", mustve: "must've",
  neednt: "needn't", notve: "not've", oclock: "o'clock", oughtnt: "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
  "'ow'sat": "'ow's'at", shant: "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
  shouldve: "should've", shouldnt: "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
  "somebody'd": 'somebodyd', "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", somebodyll: "somebody'll",
  somebodys: "somebody's", someoned: "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
  someonell: "someone'll", someones: "someone's", somethingd: "something'd", "somethingd've": "something'd've",
  "something'dve": "something'd've", somethingll: "something'll", thats: "that's", thered: "there'd",
  "thered've": "there'd've", "there'dve": "there'd've", therere: "there're", theres: "there's", theyd: "they'd",
  "theyd've": "they'd've", "they'dve": "they'd've", theyll: "they'll", theyre: "they're", theyve: "they've",
  twas: "'twas", wasnt: "wasn't", "wed've": "we'd've", "we'dve": "we'd've", weve: "we've", werent: "weren't",
  whatll: "what'll", whatre: "what're", whats: "what's", whatve: "what've", whens: "when's", whered: "where'd",
  wheres: "where's", whereve: "where've", whod: "who'd", "whod've": "who'd've", "who'dve": "who'd've", wholl: "who'll",
  whos: "who's", whove: "who've", whyll: "why'll", whyre: "why're", whys: "why's", wont: "won't", wouldve: "would've",
  wouldnt: "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", yall: "y'all", "yall'll": "y'all'll",
  "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", youd: "you'd",
  "youd've": "you'd've", "you'dve": "you'd've", youll: "you'll", youre: "you're", youve: "you've",
};

/** Steps 1 and 2 of the official normalisation: whitespace and punctuation. */
function processPunctuation(text: string): string {
  const deleteAll = /\d,\d/.test(text);
  let out = text;
  for (const p of PUNCTUATION) {
    const replacement = deleteAll || text.includes(p + ' ') || text.includes(' ' + p) ? '' : ' ';
    out = out.split(p).join(replacement);
  }
  return out.replace(/\.(?!\d)/g, '');
}

/** Step 3: number words to digits, articles out, apostrophes back. */
function processDigitArticle(text: string): string {
  const words: string[] = [];
  for (const w of text.toLowerCase().split(/\s+/)) {
    if (!w) continue;
    const word = NUMBER_WORDS[w] ?? w;
    if (!ARTICLES.has(word)) words.push(Object.hasOwn(CONTRACTIONS, word) ? CONTRACTIONS[word] : word);
  }
  return words.join(' ');
}

/** The official VQA answer normalisation: "Two." -> "2", "the Dog" -> "dog", "dont know" -> "don't know". */
export function normalizeVqaAnswer(answer: string): string {
  if (typeof answer !== 'string') throw new ValueError(`normalizeVqaAnswer: expected a string, got ${typeof answer}`);
  return processDigitArticle(processPunctuation(answer.replace(/[\n\t]/g, ' ').trim()));
}

/**
 * Accuracy in [0, 1] of one predicted answer against the ground-truth answers (10 for VQAv2, 1
 * for video QA and our synthetic data): the leave-one-out min(#matches / 3, 1) mean when there
 * are several, exact match after normalisation when there is one.
 */
export function vqaAccuracy(prediction: string, answers: string[]): number {
  if (typeof prediction !== 'string') throw new ValueError(`vqaAccuracy: prediction must be a string, got ${typeof prediction}`);
  if (!Array.isArray(answers) || answers.length === 0) throw new ValueError('vqaAccuracy: need at least one ground-truth answer');
  if (answers.some((a) => typeof a !== 'string')) throw new ValueError('vqaAccuracy: every ground-truth answer must be a string');
  const pred = normalizeVqaAnswer(prediction);
  const truth = answers.map(normalizeVqaAnswer);
  if (truth.length === 1) return truth[0] === pred ? 1 : 0;
  const matches = truth.filter((a) => a === pred).length;
  let total = 0;
  for (const a of truth) total += Math.min(1, (matches - (a === pred ? 1 : 0)) / 3);
  return total / truth.length;
}

export interface VqaItem {
  /** The model's answer (already through emuShortAnswer if it came from generation). */
  prediction: string;
  /** The ground-truth answers: 10 for VQAv2-style data, 1 for video QA. */
  answers: string[];
}

export interface VqaResult {
  /** Mean accuracy over the questions, in [0, 1]. */
  accuracy: number;
  perQuestion: number[];
}

/** Mean VQA accuracy over a set of questions (the number in the paper's VQA and video QA columns, / 100). */
export function vqaCorpusAccuracy(items: VqaItem[]): VqaResult {
  if (!Array.isArray(items) || items.length === 0) throw new ValueError('vqaCorpusAccuracy: no questions to score');
  const perQuestion = items.map((it, i) => {
    if (!it || typeof it !== 'object') throw new ValueError(`vqaCorpusAccuracy: item ${i} is not { prediction, answers }`);
    return vqaAccuracy(it.prediction, it.answers);
  });
  return { accuracy: perQuestion.reduce((s, x) => s + x, 0) / perQuestion.length, perQuestion };
}

/**
 * Emu's post-processing of a generated answer (reference/emu-architecture.md 4.1, VQA row): the
 * text up to the first clause break (, ; ! ? newline, or a '.' not inside a number), lower-cased,
 * without a leading "it is" / "it's" and without a leading article.
 * "It is a red circle, on the left." -> "red circle".
 */
export function emuShortAnswer(generated: string): string {
  if (typeof generated !== 'string') throw new ValueError(`emuShortAnswer: expected a string, got ${typeof generated}`);
  const firstClause = generated.trim().toLowerCase().split(/[,;!?\n]|\.(?!\d)/)[0];
  return firstClause.trim().replace(/^(it is|it's)\s+/, '').replace(/^(a|an|the)\s+/, '').trim();
}
