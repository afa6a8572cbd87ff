#!/usr/bin/env node
// validate.js: checks every golden activity (tests/golden/*.json, written by
// test_card) the way SPEC §4 asks: the card parses and validates with the
// official adaptivecards SDK targeting 1.5 (Teams' ceiling for bot cards),
// and the activity around it has one Adaptive Card attachment, no "text",
// and stays under 100 KB counted as UTF-16.
//
// Usage: node validate.js DIR|FILE...   (exit 0 all valid, 1 otherwise)
'use strict';

const fs = require('fs');
const path = require('path');
// The package's lib/ build is ESM-only and fails under require(); the UMD
// bundle works without a DOM for parsing and validation.
const AC = require('adaptivecards/dist/adaptivecards.js');

const CONTENT_TYPE = 'application/vnd.microsoft.card.adaptive';
const MAX_UTF16_BYTES = 100000; // keep equal to CARD_MAX_UTF16_BYTES in src/card.h

// JS strings are UTF-16, so .length counts code units (an emoji counts 2).
function utf16Bytes(text) {
  return text.length * 2;
}

// The card's problems as strings: parse events, then validation events.
function cardProblems(content) {
  const problems = [];
  const card = new AC.AdaptiveCard();
  const ctx = new AC.SerializationContext(AC.Versions.v1_5);

  card.parse(content, ctx);
  for (let i = 0; i < ctx.eventCount; i++) {
    const e = ctx.getEventAt(i);
    problems.push(`parse: ${AC.ValidationEvent[e.event]}: ${e.message}`);
  }
  const results = card.validateProperties();
  for (const e of results.validationEvents) {
    problems.push(`validate: ${AC.ValidationEvent[e.event]}: ${e.message}`);
  }
  if (content.version !== '1.5') {
    problems.push(`card version is ${JSON.stringify(content.version)}, want "1.5"`);
  }
  return problems;
}

// Our own house rule on top of the SDK: only what Teams renders for bot
// cards (research/botframework.md §4.4), so no Action.Execute, no media,
// no positive/destructive action styles, even where 1.5 allows them.
const ALLOWED_TYPES = new Set([
  'AdaptiveCard', 'TextBlock', 'FactSet', 'Container', 'ColumnSet', 'Column', 'ActionSet',
  'Action.OpenUrl',
]);

function houseProblems(node, where, problems) {
  if (Array.isArray(node)) {
    node.forEach((v, i) => houseProblems(v, `${where}[${i}]`, problems));
    return problems;
  }
  if (node === null || typeof node !== 'object') return problems;
  if (typeof node.type === 'string' && !ALLOWED_TYPES.has(node.type)) {
    problems.push(`house: ${where}: type ${node.type} is not on the Teams allowlist`);
  }
  if (typeof node.type === 'string' && node.type.startsWith('Action.') &&
      (node.style === 'positive' || node.style === 'destructive')) {
    problems.push(`house: ${where}: action style ${node.style} is not rendered by Teams`);
  }
  for (const [key, value] of Object.entries(node)) {
    houseProblems(value, `${where}.${key}`, problems);
  }
  return problems;
}

// The activity's problems: shape and size (SPEC §4, §6).
function activityProblems(text, activity) {
  const problems = [];

  if (activity.type !== 'message') problems.push('type is not "message"');
  if ('text' in activity) problems.push('activity has a "text" property');
  for (const key of ['from', 'recipient', 'conversation']) {
    if (!activity[key] || typeof activity[key].id !== 'string' || !activity[key].id) {
      problems.push(`${key}.id missing`);
    }
  }
  const size = utf16Bytes(text);
  if (size >= MAX_UTF16_BYTES) problems.push(`${size} bytes as UTF-16, limit ${MAX_UTF16_BYTES}`);
  const atts = activity.attachments;
  if (!Array.isArray(atts) || atts.length !== 1) {
    problems.push('want exactly one attachment');
    return problems;
  }
  if (atts[0].contentType !== CONTENT_TYPE) problems.push(`contentType ${atts[0].contentType}`);
  if (!atts[0].content || atts[0].content.type !== 'AdaptiveCard') {
    problems.push('attachment content is not an AdaptiveCard');
    return problems;
  }
  return problems.concat(cardProblems(atts[0].content),
                         houseProblems(atts[0].content, 'card', []));
}

function checkFile(file) {
  const text = fs.readFileSync(file, 'utf8').replace(/\n$/, '');
  let activity;
  try {
    activity = JSON.parse(text);
  } catch (err) {
    return [`not JSON: ${err.message}`];
  }
  return activityProblems(text, activity);
}

function listFiles(args) {
  const files = [];
  for (const arg of args) {
    if (fs.statSync(arg).isDirectory()) {
      for (const name of fs.readdirSync(arg).sort()) {
        if (name.endsWith('.json')) files.push(path.join(arg, name));
      }
    } else {
      files.push(arg);
    }
  }
  return files;
}

function main(argv) {
  if (argv.length === 0) {
    console.error('usage: node validate.js DIR|FILE...');
    return 2;
  }
  const files = listFiles(argv);
  let bad = 0;
  if (files.length === 0) {
    console.error('no .json files found');
    return 1;
  }
  for (const file of files) {
    const problems = checkFile(file);
    if (problems.length === 0) {
      console.log(`ok   ${path.basename(file)}`);
      continue;
    }
    bad++;
    console.log(`FAIL ${path.basename(file)}`);
    for (const p of problems) console.log(`     ${p}`);
  }
  console.log(`${files.length - bad}/${files.length} valid`);
  return bad === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
