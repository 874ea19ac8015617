// UI strings, English and Russian. Keys match the data-t attributes.
export const STRINGS = {
  en: {
    conference_id: 'Conference ID', login_legend: 'Log in (optional)', user: 'User or full ID',
    password: 'Password', display_name: 'Your name', join: 'Join', join_conference: 'Join conference',
    mic_on: 'Microphone on', cam_on: 'Camera on', pin: 'PIN', pin_help: 'Digits only; a PIN never starts with 0.',
    pin_wrong: 'Wrong PIN.', continue: 'Continue', waiting: 'Waiting for a moderator to let you in…',
    cancel: 'Cancel', in_conference: 'In conference', mute_mic: 'Mute microphone', unmute_mic: 'Unmute microphone',
    leave: 'Leave', participants: 'Participants', back: 'Back to the main page', you: 'you',
    ended: 'The call ended', left: 'You left the conference.', bad_param: 'Ignored an invalid link parameter',
    bad_conf: 'This link has no valid conference ID.', connecting: 'Connecting…', auth_failed: 'Wrong user or password.',
    name_needed: 'Enter a name or log in.', muted_by_moderator: 'A moderator muted your microphone.',
  },
  ru: {
    conference_id: 'ID конференции', login_legend: 'Вход (необязательно)', user: 'Пользователь или полный ID',
    password: 'Пароль', display_name: 'Ваше имя', join: 'Войти', join_conference: 'Вход в конференцию',
    mic_on: 'Микрофон включён', cam_on: 'Камера включена', pin: 'PIN-код',
    pin_help: 'Только цифры; PIN-код не начинается с 0.', pin_wrong: 'Неверный PIN-код.', continue: 'Продолжить',
    waiting: 'Ожидайте, пока модератор впустит вас…', cancel: 'Отмена', in_conference: 'В конференции',
    mute_mic: 'Выключить микрофон', unmute_mic: 'Включить микрофон', leave: 'Выйти', participants: 'Участники',
    back: 'На главную', you: 'вы', ended: 'Звонок завершён', left: 'Вы вышли из конференции.',
    bad_param: 'Неверный параметр ссылки проигнорирован', bad_conf: 'В ссылке нет правильного ID конференции.',
    connecting: 'Подключение…', auth_failed: 'Неверный пользователь или пароль.',
    name_needed: 'Введите имя или войдите.', muted_by_moderator: 'Модератор выключил ваш микрофон.',
  },
};
